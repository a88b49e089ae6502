"""fast_init (issue 15): a frozen dataclass built by the quicker __init__ is the
one its own __init__ builds, and stays frozen; a class it cannot build is refused."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import InitVar, dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocator.decision import Decision, LeadPlan
from allocator.frozen import fast_init
from allocator.models import Allocation
from allocator.quota.base import Blocked, ChannelAsk, Held, LeadRequest, Reservation


def _made() -> type[Any]:
    @dataclass(frozen=True, slots=True)
    class Record:
        name: str
        count: int
        tags: tuple[str, ...] = ()
        seen: list[int] = field(default_factory=list)
        note: str | None = field(default=None, compare=False)

    return Record


# Two copies of one class: the dataclass's own __init__, and fast_init's.
Plain = _made()
Quick = fast_init(_made())


def built(cls: type[Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    return dataclasses.asdict(cls(*args, **kwargs))


@given(
    name=st.text(max_size=5),
    count=st.integers(),
    tags=st.tuples(st.text(max_size=3)),
    note=st.none() | st.text(max_size=3),
)
def test_it_builds_what_the_dataclass_init_builds(
    name: str, count: int, tags: tuple[str], note: str | None
) -> None:
    assert built(Quick, name, count) == built(Plain, name, count)
    assert built(Quick, name, count, tags, [count], note) == built(
        Plain, name, count, tags, [count], note
    )
    assert built(Quick, count=count, name=name, note=note) == built(
        Plain, count=count, name=name, note=note
    )


def test_defaults_and_factories_are_the_dataclass_s() -> None:
    one, other = Quick("a", 1), Quick("a", 1)
    assert one.tags == () and one.note is None
    assert one.seen == [] and one.seen is not other.seen  # a fresh list each time
    assert one == other
    assert Quick("a", 1, note="x") == Quick("a", 1, note="y")  # compare=False is kept
    assert repr(one) == repr(Plain("a", 1))
    assert str(inspect.signature(Quick)) == str(inspect.signature(Plain))  # <factory> too
    assert Quick.__init__.__annotations__ == Plain.__init__.__annotations__


def test_the_instance_stays_frozen() -> None:
    one = Quick("a", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.count = 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        del one.name


def test_wrong_arguments_fail_as_they_would() -> None:
    with pytest.raises(TypeError, match="count"):
        Quick("a")
    with pytest.raises(TypeError, match="colour"):
        Quick("a", 1, colour="red")
    with pytest.raises(TypeError):
        Quick("a", 1, (), [], None, "extra")


def test_a_class_it_cannot_build_is_refused_when_decorated() -> None:
    with pytest.raises(TypeError, match="frozen"):

        @fast_init
        @dataclass
        class Unfrozen:
            x: int

    with pytest.raises(TypeError, match="slotted"):

        @fast_init
        @dataclass(frozen=True)
        class Unslotted:
            x: int

    with pytest.raises(TypeError, match="__post_init__"):

        @fast_init
        @dataclass(frozen=True, slots=True)
        class Checked:
            x: int

            def __post_init__(self) -> None:
                raise AssertionError

    with pytest.raises(TypeError, match="InitVar"):

        @fast_init
        @dataclass(frozen=True, slots=True)
        class WithInitVar:
            x: int
            y: InitVar[int]

    with pytest.raises(TypeError, match="kw_only"):

        @fast_init
        @dataclass(frozen=True, slots=True)
        class KeywordOnly:
            x: int = field(kw_only=True)


def test_a_field_of_a_slotted_base_is_set() -> None:
    @dataclass(frozen=True, slots=True)
    class Base:
        x: int

    @fast_init
    @dataclass(frozen=True, slots=True)
    class Derived(Base):
        y: int = 2

    made = Derived(1)
    assert (made.x, made.y) == (1, 2) and made == Derived(x=1, y=2)


def test_the_per_lead_classes_use_it() -> None:
    # The classes built once or more per lead (the measured 3.4% of a worker's samples).
    for cls in (
        LeadRequest,
        ChannelAsk,
        Reservation,
        Blocked,
        Held,
        LeadPlan,
        Decision,
        Allocation,
    ):
        assert any(name.startswith("_set_") for name in cls.__init__.__code__.co_names), cls
        assert "__slots__" in cls.__dict__, cls
