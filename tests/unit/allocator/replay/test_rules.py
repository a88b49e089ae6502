"""Rules files for `replay --compare`: each field read and applied, and a bad field
refused in one line that names it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from allocator.channels import Channel, ResourceType
from allocator.decision import Schedule
from allocator.quota import MemoryQuotaStore
from allocator.replay.rules import Rules
from allocator.replay.runner import replay
from allocator.replay.sources import History
from tests.factories import client, how, lead, resource


def rules_file(tmp_path: Path, content: Any) -> Path:
    path = tmp_path / "rules.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_an_empty_rules_file_is_the_live_setup_named_variant(tmp_path: Path) -> None:
    rules = Rules.from_file(rules_file(tmp_path, {}))
    assert rules == Rules(name="variant")
    clients, resources = [client()], [resource("email", "d1", limit=7)]
    assert rules.apply(clients, resources) == (clients, resources)


def test_every_field_is_read(tmp_path: Path) -> None:
    rules = Rules.from_file(
        rules_file(
            tmp_path,
            {
                "name": "two more seats",
                "patterns": False,
                "max_defer_days": 0,
                "type_limits": {"linkedin_seat": 25, "mail_vendor": None},
                "resource_limits": {"acme-seat-3": 17},
                "send_hours": {"email": 8},
                "extra_resources": [
                    {"client_id": "acme", "channel": "linkedin", "resource_id": "acme-seat-9"}
                ],
            },
        )
    )
    assert rules.name == "two more seats"
    assert rules.use_patterns is False
    assert rules.max_defer_days == 0
    assert rules.type_limits == {ResourceType.LINKEDIN_SEAT: 25, ResourceType.MAIL_VENDOR: None}
    assert rules.resource_limits == {"acme-seat-3": 17}
    assert rules.send_hours == {Channel.EMAIL: 8}
    assert [(r.client_id, r.channel, r.resource_id) for r in rules.extra_resources] == [
        ("acme", Channel.LINKEDIN, "acme-seat-9")
    ]
    assert rules.describe() == {
        "name": "two more seats",
        "patterns": False,
        "max_defer_days": 0,
        "type_limits": {"linkedin_seat": 25, "mail_vendor": None},
        "resource_limits": {"acme-seat-3": 17},
        "send_hours": {"email": 8},
        "extra_resources": ["acme-seat-9"],
    }


def test_max_defer_days_applies_to_every_client() -> None:
    clients = [client("acme", max_defer_days=3), client("globex", max_defer_days=1)]
    changed, _ = Rules(max_defer_days=0).apply(clients, [])
    assert [(c.client_id, c.max_defer_days) for c in changed] == [("acme", 0), ("globex", 0)]
    assert [c.max_defer_days for c in clients] == [3, 1]  # the inputs are left as they were


def test_limits_by_type_and_by_name_the_name_winning() -> None:
    resources = [
        resource("linkedin", "seat-1", limit=10),
        resource("linkedin", "seat-2"),
        resource("email", "d1", limit=50),
        resource("direct_mail", "post"),
    ]
    rules = Rules(
        type_limits={ResourceType.LINKEDIN_SEAT: 25, ResourceType.MAIL_VENDOR: 300},
        resource_limits={"seat-2": 5, "d1": None},
    )
    _, changed = rules.apply([], resources)
    assert {r.resource_id: r.daily_limit for r in changed} == {
        "seat-1": 25,
        "seat-2": 5,
        "d1": None,
        "post": 300,
    }


def test_extra_resources_are_added_and_limited_like_the_others() -> None:
    extra = resource("linkedin", "seat-9")
    rules = Rules(type_limits={ResourceType.LINKEDIN_SEAT: 30}, extra_resources=(extra,))
    _, changed = rules.apply([], [resource("email", "d1", limit=50)])
    assert [(r.resource_id, r.daily_limit) for r in changed] == [("d1", 50), ("seat-9", 30)]


def test_send_hours_change_only_the_channels_named() -> None:
    configured = Schedule({Channel.EMAIL: 9, Channel.LINKEDIN: 10, Channel.SMS: 12})
    schedule = Rules(send_hours={Channel.EMAIL: 7}).schedule(configured)
    assert dict(schedule.hours) == {Channel.EMAIL: 7, Channel.LINKEDIN: 10, Channel.SMS: 12}
    assert dict(configured.hours)[Channel.EMAIL] == 9


@pytest.mark.parametrize(
    ("use_patterns", "source", "first"), [(True, "pattern", "voice"), (False, "default", "email")]
)
async def test_patterns_false_replays_without_patterns(
    use_patterns: bool, source: str, first: str
) -> None:
    history = History(
        leads=[lead(90, scored_at="2026-11-26T12:00:00+00:00")],
        patterns=[how(["voice", "email"], updated_at="2026-11-26T11:00:00Z")],
        rejected=[],
    )
    run = await replay(
        history,
        [client()],
        [resource("email", "d1"), resource("voice", "v1")],
        Rules(use_patterns=use_patterns),
        Schedule(),
        MemoryQuotaStore(),
    )
    allocation = json.loads(run.lines[0])
    assert allocation["sequence_source"] == source
    assert allocation["channels"][0]["channel"] == first


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ({"nme": "typo"}, "nme"),
        ({"patterns": "sometimes"}, "patterns"),
        ({"max_defer_days": 31}, "max_defer_days"),
        ({"max_defer_days": -1}, "max_defer_days"),
        ({"type_limits": {"pigeon": 3}}, "type_limits.pigeon"),
        ({"type_limits": {"email_domain": "lots"}}, "type_limits.email_domain"),
        ({"resource_limits": {"d1": 2.5}}, "resource_limits.d1"),
        ({"send_hours": {"fax": 9}}, "send_hours.fax"),
        ({"extra_resources": [{"client_id": "acme", "resource_id": "x"}]}, "channel"),
        ({"extra_resources": [{"client_id": "acme", "channel": "fax", "resource_id": "x"}]},
         "channel"),
        ([1, 2], "record"),
    ],
)  # fmt: skip
def test_a_bad_field_is_refused_in_one_line_naming_it(
    tmp_path: Path, content: Any, named: str
) -> None:
    path = rules_file(tmp_path, content)
    with pytest.raises(ValueError) as caught:
        Rules.from_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {named}")
    assert "\n" not in message


def test_a_file_that_is_not_json_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = rules_file(tmp_path, "name: variant")
    with pytest.raises(ValueError, match="Expecting value") as caught:
        Rules.from_file(path)
    assert str(caught.value).startswith(f"{path}: ")


# Limits and hours are bounded as the loaders bound them (a resource's
# daily_limit is a Count, a pattern's hour an Hour): a send hour of 24 once
# made most leads undecidable instead of refusing the file.
def test_a_send_hour_out_of_the_day_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"send_hours\.email"):
        Rules.from_file(rules_file(tmp_path, {"send_hours": {"email": 24}}))


def test_a_negative_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"type_limits\.email_domain"):
        Rules.from_file(rules_file(tmp_path, {"type_limits": {"email_domain": -5}}))
