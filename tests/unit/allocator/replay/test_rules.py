"""Rules files for `replay --compare`: each field read and applied, and a bad field
refused in one line that names it."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from allocator.channels import Channel, ResourceType
from allocator.decision import Schedule
from allocator.models import Pool, Resource
from allocator.quota import MemoryQuotaStore
from allocator.replay import rules as rules_module
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
    assert rules.apply(clients, resources) == (clients, resources, [])


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
        "clients": {},
        "types": {},
        "resources": {},
        "pools": [],
    }


def test_max_defer_days_applies_to_every_client() -> None:
    clients = [client("acme", max_defer_days=3), client("globex", max_defer_days=1)]
    changed = Rules(max_defer_days=0).apply(clients, []).clients
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
    changed = rules.apply([], resources).resources
    assert {r.resource_id: r.daily_limit for r in changed} == {
        "seat-1": 25,
        "seat-2": 5,
        "d1": None,
        "post": 300,
    }


def test_extra_resources_are_added_and_limited_like_the_others() -> None:
    extra = resource("linkedin", "seat-9")
    rules = Rules(type_limits={ResourceType.LINKEDIN_SEAT: 30}, extra_resources=(extra,))
    changed = rules.apply([], [resource("email", "d1", limit=50)]).resources
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
        ({"extra_resources": [{"client_id": "acme", "resource_id": "x"}]},
         "extra_resources.0.channel"),
        ({"extra_resources": [{"client_id": "acme", "channel": "fax", "resource_id": "x"}]},
         "extra_resources.0.channel"),
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


# --- round 2: every client and resource field, and pools ----------------------


def warming(resource_id: str = "mail.acme.io", every_days: int = 1) -> Resource:
    return Resource.model_validate(
        {
            "client_id": "acme",
            "channel": "email",
            "resource_id": resource_id,
            "daily_limit": 28,
            "warmup": {"start": "2026-11-23", "initial": 2, "step": 2, "every_days": every_days},
        }
    )


def pool(pool_id: str = "acme-mail", daily: int | None = 5, channel: str = "email") -> Pool:
    return Pool.model_validate(
        {"client_id": "acme", "channel": channel, "pool_id": pool_id, "daily_limit": daily}
    )


ROUND_TWO = {
    "name": "round two",
    "clients": {
        "*": {"max_defer_days": 5},
        "acme": {"rotation": "least_loaded", "lead_daily_limit": 2},
    },
    "types": {"linkedin_seat": {"weekly_limit": 30}},
    "resources": {
        "*": {"active": True},
        "mail.acme.io": {"warmup": {"every_days": 2}, "pool_id": "acme-mail"},
        "seat-2": {"weekly_limit": None, "daily_limit": 9},
    },
    "pools": [{"client_id": "acme", "channel": "email", "pool_id": "acme-mail", "daily_limit": 40}],
}


def test_round_two_changes_are_read_and_described(tmp_path: Path) -> None:
    rules = Rules.from_file(rules_file(tmp_path, ROUND_TWO))
    assert rules.client_changes == ROUND_TWO["clients"]
    assert rules.type_changes == {ResourceType.LINKEDIN_SEAT: {"weekly_limit": 30}}
    assert rules.resource_changes == ROUND_TWO["resources"]
    assert rules.pools == (pool(daily=40),)
    assert rules.names_pools
    described = rules.describe()
    assert described["clients"] == ROUND_TWO["clients"]
    assert described["types"] == {"linkedin_seat": {"weekly_limit": 30}}
    assert described["resources"] == ROUND_TWO["resources"]
    assert described["pools"] == [
        {
            "client_id": "acme",
            "channel": "email",
            "pool_id": "acme-mail",
            "daily_limit": 40,
            "weekly_limit": None,
        }
    ]
    json.dumps(described)  # summary.json and compare.json hold it


def test_changes_apply_every_then_type_then_id_field_by_field(tmp_path: Path) -> None:
    rules = Rules.from_file(rules_file(tmp_path, ROUND_TWO))
    paused = resource("linkedin", "seat-2", active=False).model_copy(update={"weekly_limit": 50})
    setup = rules.apply(
        [client("acme"), client("globex", max_defer_days=1)],
        [warming(), resource("linkedin", "seat-1", limit=10), paused],
    )
    acme, globex = setup.clients
    assert (acme.max_defer_days, acme.rotation, acme.lead_daily_limit) == (5, "least_loaded", 2)
    assert (globex.max_defer_days, globex.rotation, globex.lead_daily_limit) == (
        5,
        "least_used",
        None,
    )
    mail, seat_1, seat_2 = setup.resources
    # a warm-up's fields not named are kept: the ramp is only slower
    assert mail.warmup is not None
    assert (mail.warmup.start.isoformat(), mail.warmup.initial, mail.warmup.step) == (
        "2026-11-23",
        2,
        2,
    )
    assert mail.warmup.every_days == 2 and mail.pool_id == "acme-mail"
    assert mail.daily_limit == 28 and mail.weekly_limit is None
    # the type's weekly limit, and the resource's own null over it
    assert (seat_1.daily_limit, seat_1.weekly_limit, seat_1.active) == (10, 30, True)
    assert (seat_2.daily_limit, seat_2.weekly_limit, seat_2.active) == (9, None, True)
    assert setup.pools == [pool(daily=40)]


def test_null_clears_a_warmup_and_an_object_replaces_it_whole_when_complete() -> None:
    cleared = Rules(resource_changes={"mail.acme.io": {"warmup": None}})
    assert cleared.apply([], [warming()]).resources[0].warmup is None
    given = {"start": "2026-12-01", "initial": 5, "step": 1, "every_days": 7}
    (changed,) = (
        Rules(resource_changes={"d1": {"warmup": given}})
        .apply([], [resource("email", "d1")])
        .resources
    )
    assert changed.warmup is not None and changed.warmup.model_dump(mode="json") == given


def test_a_partial_warmup_for_a_resource_without_one_names_what_is_missing() -> None:
    rules = Rules(type_changes={ResourceType.EMAIL_DOMAIN: {"warmup": {"every_days": 2}}})
    with pytest.raises(ValueError) as caught:
        rules.apply([], [resource("email", "d1")])
    assert str(caught.value) == (
        "resource 'd1', as the rules change it: warmup.start: required field is missing "
        "(resource 'd1' has no warmup to change: give start, initial, step)"
    )


def test_the_round_one_keys_still_apply_beside_the_new_ones() -> None:
    rules = Rules(
        max_defer_days=0,
        type_limits={ResourceType.LINKEDIN_SEAT: 25},
        resource_limits={"seat-2": 5},
        client_changes={"acme": {"max_defer_days": 2}},
        type_changes={ResourceType.LINKEDIN_SEAT: {"weekly_limit": 100}},
    )
    setup = rules.apply(
        [client("acme"), client("globex")],
        [resource("linkedin", "seat-1"), resource("linkedin", "seat-2")],
    )
    assert [c.max_defer_days for c in setup.clients] == [2, 0]  # the client's own over "*"
    assert [(r.daily_limit, r.weekly_limit) for r in setup.resources] == [(25, 100), (5, 100)]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"client_changes": {"initech": {"lead_daily_limit": 1}}},
            "clients: no client initech in this history (the clients given)",
        ),
        (
            {"resource_changes": {"seat-33": {"weekly_limit": 1}}},
            "resources: no resource seat-33 in this history "
            "(its resources and the rules' extra_resources)",
        ),
    ],
)
def test_a_client_or_resource_the_history_has_not_is_refused(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        Rules(**changes).apply([client()], [resource("linkedin", "seat-1")])
    assert str(caught.value) == message


def test_a_pool_id_the_rules_set_names_a_pool_of_the_history_or_the_rules() -> None:
    rules = Rules(resource_changes={"d1": {"pool_id": "acme-mail"}})
    with pytest.raises(ValueError) as caught:
        rules.apply([client()], [resource("email", "d1")])
    assert str(caught.value) == (
        "resources: resource 'd1': pool_id: client 'acme' has no email pool 'acme-mail' "
        "(among the history's pools and the rules' \"pools\")"
    )
    # a pool of another channel is no pool of this resource
    with pytest.raises(ValueError, match="pool_id"):
        rules.apply([client()], [resource("email", "d1")], [pool(channel="sms")])
    assert rules.apply([client()], [resource("email", "d1")], [pool()]).resources[0].pool_id
    with_pool = Rules(resource_changes={"d1": {"pool_id": "acme-mail"}}, pools=(pool(),))
    assert with_pool.apply([client()], [resource("email", "d1")]).pools == [pool()]


def test_the_rules_pools_replace_the_historys_by_key_and_add_the_others() -> None:
    rules = Rules(pools=(pool(daily=50), pool("acme-seats", 30, "linkedin")))
    setup = rules.apply([client()], [], [pool(daily=5), pool("other", 9)])
    assert [(p.pool_id, p.daily_limit) for p in setup.pools] == [
        ("acme-mail", 50),
        ("other", 9),
        ("acme-seats", 30),
    ]


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ({"resources": {"mail.acme.io": {"warmup": {"every_days": 0}}}},
         "resources.mail.acme.io.warmup.every_days: must be in 1..366, got 0"),
        ({"types": {"linkedin_seat": {"weekly_limit": -30}}},
         "types.linkedin_seat.weekly_limit: must be in 0..1000000, got -30"),
        ({"resources": {"*": {"weekly_limit": 2.5}}},
         "resources.*.weekly_limit: must be an integer, got 2.5"),
        ({"resources": {"d1": {"warmup": {"start": "next monday"}}}},
         "resources.d1.warmup.start: must be a date YYYY-MM-DD"),
        ({"resources": {"d1": {"warmup": {"every_day": 2}}}},
         "resources.d1.warmup.every_day: not a field of warmup"),
        ({"resources": {"d1": {"warmup": 3}}}, "resources.d1.warmup"),
        ({"resources": {"d1": {"active": "no"}}}, "resources.d1.active: must be true or false"),
        ({"resources": {"d1": {"pool_id": ""}}}, "resources.d1.pool_id: must be a non-empty"),
        ({"resources": {"d1": {"limit": 3}}},
         "resources.d1.limit: not a field of a resource (a change may set daily_limit, active, "
         "weekly_limit, warmup, pool_id"),
        ({"resources": {"d1": {"channel": "sms"}}},
         "resources.d1.channel: names the resource, it cannot be changed"),
        ({"resources": {"d1": 17}}, "resources.d1: Input should be a valid dictionary"),
        ({"clients": {"*": {"rotation": "round_robin"}}}, "clients.*.rotation"),
        ({"clients": {"acme": {"lead_daily_limit": -1}}},
         "clients.acme.lead_daily_limit: must be in 0..1000000, got -1"),
        ({"clients": {"acme": {"recipient_domain_daily_limit": "ten"}}},
         "clients.acme.recipient_domain_daily_limit: must be an integer"),
        ({"clients": {"acme": {"max_defer_days": 31}}},
         "clients.acme.max_defer_days: must be in 0..30"),
        ({"clients": {"acme": {"timezone": "Mars/Olympus"}}}, "clients.acme.timezone"),
        ({"clients": {"acme": {"client_id": "globex"}}},
         "clients.acme.client_id: names the client, it cannot be changed"),
        ({"types": {"pigeon": {"weekly_limit": 3}}}, "types.pigeon: Input should be"),
        ({"pools": [{"client_id": "acme", "channel": "email", "daily_limit": 5}]},
         "pools.0.pool_id: required field is missing"),
        ({"pools": [{"client_id": "acme", "channel": "email", "pool_id": "p",
                     "daily_limit": None, "weekly_limit": -1}]},
         "pools.0.weekly_limit: must be in 0..1000000, got -1"),
        ({"max_defer_days": 0, "clients": {"*": {"max_defer_days": 1}}},
         "max_defer_days: also set as clients.*.max_defer_days; keep one of the two"),
        ({"type_limits": {"linkedin_seat": 20}, "types": {"linkedin_seat": {"daily_limit": 25}}},
         "type_limits.linkedin_seat: also set as types.linkedin_seat.daily_limit"),
        ({"resource_limits": {"d1": 3}, "resources": {"d1": {"daily_limit": None}}},
         "resource_limits.d1: also set as resources.d1.daily_limit"),
    ],
)  # fmt: skip
def test_a_bad_round_two_value_is_refused_in_one_line_naming_its_field(
    tmp_path: Path, content: Any, named: str
) -> None:
    path = rules_file(tmp_path, content)
    with pytest.raises(ValueError) as caught:
        Rules.from_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {named}")
    assert "\n" not in message


WEEK = [f"2026-11-{day}T08:00:00+00:00" for day in (23, 24, 25, 26, 27)]  # Monday to Friday


async def test_a_weekly_linkedin_cap_defers_sends_with_reason_deferred_weekly(
    tmp_path: Path,
) -> None:
    # 10 cool leads (email and linkedin) a weekday for a week; one seat with
    # room for 17 a day: without a weekly cap every send goes on its day.
    leads = [
        lead(45, lead_id=f"l{day}-{n}", scored_at=at)
        for day, at in enumerate(WEEK)
        for n in range(10)
    ]
    history = History(leads, [], [])
    setup = ([client()], [resource("email", "d1"), resource("linkedin", "seat-1")])
    cap = Rules.from_file(rules_file(tmp_path, {"types": {"linkedin_seat": {"weekly_limit": 30}}}))
    runs = {}
    for rules in (Rules(), cap):
        run = await replay(history, *setup, rules, Schedule(), MemoryQuotaStore())
        runs[rules.name] = [json.loads(line) for line in run.lines]
    codes = {
        name: Counter(
            (e["channel"], (e["reason"] or {}).get("code"))
            for a in allocations
            for e in a["channels"]
        )
        for name, allocations in runs.items()
    }
    assert codes["baseline"] == Counter({("email", None): 50, ("linkedin", None): 50})
    variant = codes["variant"]
    assert variant[("linkedin", None)] == 30  # Monday to Wednesday, 10 a day
    assert variant[("linkedin", "deferred_weekly")] + variant[("linkedin", "exhausted")] == 20
    assert variant[("linkedin", "deferred_weekly")] > 0
    assert variant[("email", None)] == 50  # email has no weekly cap
    sent = Counter(
        e["usage_day"]
        for a in runs["variant"]
        for e in a["channels"]
        if e["channel"] == "linkedin" and e["status"] == "allocated"
    )
    # no 7 days in a row hold more than 30 sends of the seat
    assert sum(n for day, n in sent.items() if day <= "2026-11-29") == 30
    detail = next(
        e["reason"]["detail"]
        for a in runs["variant"]
        for e in a["channels"]
        if e["reason"] and e["reason"]["code"] == "deferred_weekly"
    )
    assert detail == "1 linkedin seat at their weekly limit on 2026-11-26"


def documented(which: int) -> str:
    """The rules module's `which`-th example, its comments taken out."""
    assert rules_module.__doc__ is not None
    blocks = re.findall(r"\n\n((?:    .*\n)+)", rules_module.__doc__)
    return "\n".join(re.sub(r"#.*$", "", line) for line in blocks[which].splitlines())


@pytest.mark.parametrize("which", [0, 1])
def test_the_documented_examples_are_rules_files(tmp_path: Path, which: int) -> None:
    rules = Rules.from_file(rules_file(tmp_path, documented(which)))
    clients = [client("acme")]
    resources = [warming(), resource("linkedin", "acme-seat-3")]
    if which == 0:
        assert rules.name == "28-day warm-up, weekly LinkedIn cap"
        setup = rules.apply(clients, resources)
        assert setup.resources[0].warmup is not None and setup.resources[0].warmup.every_days == 2
        assert setup.resources[1].pool_id == "acme-seats"
        assert [r.resource_id for r in setup.resources] == [
            "mail.acme.io",
            "acme-seat-3",
            "acme-seat-9",
        ]
    else:
        setup = rules.apply(clients, resources)
        assert setup.resources[1].daily_limit == 17 and setup.clients[0].max_defer_days == 0
