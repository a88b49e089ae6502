"""The pattern book: fed from the database and from pattern copies in any
order, it ends with the newest pattern of every slot."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from allocator.models import ConversionPattern
from allocator.patterns import PatternBook, PatternSet
from tests.factories import how, when

CLIENTS = ["acme", "globex"]


def patterns() -> st.SearchStrategy[ConversionPattern]:
    stamp = st.integers(1, 28).map(lambda d: f"2026-02-{d:02d}T00:00:00Z")
    client = st.sampled_from(CLIENTS)
    hows = st.builds(
        lambda c, t, s: how(s, updated_at=t, client_id=c),
        client,
        stamp,
        st.sampled_from([["email"], ["sms", "email"], ["voice"]]),
    )
    whens = st.builds(
        lambda c, t, ch, h: when(ch, 1, h, updated_at=t, client_id=c),
        client,
        stamp,
        st.sampled_from(["email", "sms"]),
        st.integers(0, 23),
    )
    return st.one_of(hows, whens)


def newest(items: list[ConversionPattern]) -> dict[tuple[str, str], str]:
    best: dict[tuple[str, str], ConversionPattern] = {}
    for p in items:
        slot = (p.client_id, getattr(p, "channel", "how") or "how")
        if slot not in best or p.updated_at >= best[slot].updated_at:
            best[slot] = p
    return {k: v.updated_at.isoformat() for k, v in best.items()}


def content(book: PatternBook) -> dict[tuple[str, str], str]:
    return {
        (c, getattr(p, "channel", "how") or "how"): p.updated_at.isoformat()
        for c in CLIENTS
        for p in book.get(c).all()
    }


@given(st.lists(patterns(), max_size=30), st.integers(0, 30), st.randoms())
def test_database_seed_and_copies_in_any_order(
    items: list[ConversionPattern], cut: int, rng: object
) -> None:
    in_database, copies = items[:cut], items[cut:]
    seeded: dict[str, PatternSet] = {}
    for p in in_database:
        seeded[p.client_id] = seeded.get(p.client_id, PatternSet()).with_pattern(p)
    book = PatternBook()
    for p in copies:
        book.apply(p)
    book.merge(seeded)  # the seed lands after some copies
    book.merge(seeded)  # and again, after a second assignment: nothing changes
    assert content(book) == newest(items)
    assert len(book) == len(newest(items))


def test_an_unknown_client_has_no_patterns() -> None:
    assert PatternBook().get("nobody") == PatternSet()
