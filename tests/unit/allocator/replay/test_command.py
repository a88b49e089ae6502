"""`allocator replay` over files: determinism, event time, bad lines, report."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import allocator.batch
from streams.cli import main
from tests.replay_data import (
    BAD_LINES,
    replay_args,
    setup_args,
    warmup_resource,
    weekday_leads,
    write_history,
    write_lines,
    write_setup,
)
from tests.unit.allocator.replay.test_report import read


def run(args: list[str]) -> None:
    assert main(args) == 0


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_inputs_give_byte_identical_output(tmp_path: Path) -> None:
    paths = write_history(tmp_path)
    run(replay_args(paths, tmp_path / "a.jsonl"))
    run(replay_args(paths, tmp_path / "b.jsonl"))
    a = (tmp_path / "a.jsonl").read_bytes()
    assert a and a == (tmp_path / "b.jsonl").read_bytes()


def test_output_is_in_input_order_and_decided_at_is_scored_at(tmp_path: Path) -> None:
    paths = write_history(tmp_path, bad=False)
    run(replay_args(paths, tmp_path / "out.jsonl"))
    inputs = [json.loads(line) for line in paths["leads"].read_text().splitlines()]
    outputs = records(tmp_path / "out.jsonl")
    assert [o["event_id"] for o in outputs] == [i["event_id"] for i in inputs]
    for i, o in zip(inputs, outputs, strict=True):
        assert o["decided_at"].replace("Z", "+00:00") == i["scored_at"]


def test_pattern_mid_stream_changes_only_later_leads(tmp_path: Path) -> None:
    # Demo leads are scored every 2 minutes from 13:00Z; the patterns arrive at 15:00Z.
    paths = write_history(tmp_path, bad=False, pattern_time="2026-11-26T15:00:00+00:00")
    run(replay_args(paths, tmp_path / "out.jsonl"))
    inputs = {
        json.loads(x)["event_id"]: json.loads(x) for x in paths["leads"].read_text().splitlines()
    }
    acme_hot_or_cool = [
        o
        for o in records(tmp_path / "out.jsonl")
        if o["client_id"] == "acme" and o["als_tier"] != "unqualified"
    ]
    before = [
        o
        for o in acme_hot_or_cool
        if inputs[str(o["event_id"])]["scored_at"] < "2026-11-26T15:00:00"
    ]
    after = [
        o
        for o in acme_hot_or_cool
        if inputs[str(o["event_id"])]["scored_at"] >= "2026-11-26T15:00:00"
    ]
    assert before and after
    assert all(o["sequence_source"] == "default" for o in before)
    # acme's HOW pattern starts with linkedin, which cold leads may not use.
    assert all(o["sequence_source"] == "pattern" for o in after if o["als_tier"] != "cold")
    at_the_instant = [
        o for o in after if inputs[str(o["event_id"])]["scored_at"] == "2026-11-26T15:00:00+00:00"
    ]
    assert all(o["sequence_source"] == "pattern" for o in at_the_instant if o["als_tier"] != "cold")


def test_invalid_lines_are_reported_and_valid_ones_all_allocated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_history(tmp_path)
    run(replay_args(paths, tmp_path / "out.jsonl", "--report", str(tmp_path / "r")))
    errors = capsys.readouterr().err
    # line numbers count the bad lines themselves: bad line k sits after k earlier bad ones
    expected = [index + 1 + n for n, index in enumerate(sorted(BAD_LINES))]
    for line in expected:
        assert f"line {line}:" in errors
    assert "als_score" in errors and "72.5" in errors and "scored_at" in errors
    valid = len(paths["leads"].read_text().splitlines()) - len(BAD_LINES)
    assert len(records(tmp_path / "out.jsonl")) == valid
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["invalid_records"] == len(BAD_LINES)
    assert summary["invalid_by_code"] == {"invalid_field": 1, "invalid_json": 1, "missing_field": 1}


def test_undecidable_lead_is_reported_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Input bounds keep every valid lead decidable today (a scored_at past the
    # last weekday Python can represent is out of range), so a rule that fails
    # is simulated: the replay must report such a lead and decide the others.
    planned = allocator.batch._planned

    def failing(lead: Any, *args: Any) -> Any:
        if lead.lead_id == "far":
            raise OverflowError("date value out of range")
        return planned(lead, *args)

    monkeypatch.setattr(allocator.batch, "_planned", failing)
    paths = write_history(tmp_path, leads=20, bad=False)
    with paths["leads"].open("a") as f:
        f.write(
            '{"lead_id": "far", "client_id": "acme", "als_score": 50, '
            '"scored_at": "2026-11-26T23:00:00Z"}\n'
        )
    run(replay_args(paths, tmp_path / "out.jsonl", "--report", str(tmp_path / "r")))
    assert "lead 'far' cannot be decided" in capsys.readouterr().err
    assert len(records(tmp_path / "out.jsonl")) == 20
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["invalid_by_code"] == {"undecidable": 1}


def test_summary_matches_output_and_report_renders(tmp_path: Path) -> None:
    paths = write_history(tmp_path)
    run(replay_args(paths, tmp_path / "out.jsonl", "--report", str(tmp_path / "r")))
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    out = records(tmp_path / "out.jsonl")
    assert summary["leads"] == len(out)
    statuses: Counter[str] = Counter()
    tiers: Counter[str] = Counter()
    for allocation in out:
        tiers[str(allocation["als_tier"])] += 1
        for entry in allocation["channels"]:  # type: ignore[attr-defined]
            statuses[entry["status"]] += 1
    s = summary["statuses"]
    assert s["allocated"] + s["deferred"] == statuses["allocated"]
    assert s["exhausted"] == statuses["exhausted"] and s["no_resource"] == statuses["no_resource"]
    assert {t: v["leads"] for t, v in summary["by_tier"].items()} == dict(tiers)
    used = sum(r["sends"] for r in summary["resources"])
    assert used == statuses["allocated"]
    for r in summary["resources"]:
        if r["daily_limit"] is not None:
            assert r["peak_per_day"] <= r["daily_limit"]

    page = (tmp_path / "r" / "index.html").read_text()
    assert len(re.findall(r'class="plotly-graph-div"', page)) == 4
    assert "Plotly.newPlot" in page and "plotly.js" in page  # the library is embedded
    for title in ("per day", "utilisation", "deferred and exhausted", "weekday"):
        assert title in page


def test_compare_reports_differences(tmp_path: Path) -> None:
    paths = write_history(tmp_path, bad=False)
    rules = tmp_path / "variant.json"
    rules.write_text(
        json.dumps(
            {
                "name": "double limits",
                "type_limits": {"email_domain": 100, "linkedin_seat": 34},
                "max_defer_days": 0,
                "extra_resources": [
                    {"client_id": "initech", "channel": "linkedin", "resource_id": "initech-seat"}
                ],
            }
        )
    )
    run(
        replay_args(
            paths, tmp_path / "out.jsonl", "--report", str(tmp_path / "r"), "--compare", str(rules)
        )
    )
    comparison = json.loads((tmp_path / "r" / "compare.json").read_text())
    base, variant = comparison["statuses"]["baseline"], comparison["statuses"]["variant"]
    assert variant["deferred"] == 0 < base["deferred"]
    assert variant["no_resource"] < base["no_resource"]  # initech gained a seat
    assert comparison["sends_moved_in_time"] > 0
    assert comparison["sends_newly_served"] > 0
    needed = {(r["client_id"], r["channel"]): r for r in comparison["capacity_needed"]["variant"]}
    assert needed[("acme", "email")]["daily_capacity"] == 200
    assert "Baseline vs double limits" in (tmp_path / "r" / "index.html").read_text()
    # the written output is the baseline's
    assert (tmp_path / "out.jsonl").read_text().count("\n") == 800


def test_bad_rules_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_history(tmp_path, leads=10, bad=False)
    rules = tmp_path / "bad.json"
    rules.write_text('{"type_limits": {"pigeon": 3}}')
    assert main(replay_args(paths, tmp_path / "o.jsonl", "--compare", str(rules))) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"replay: --compare {rules}: ") and err.count("\n") == 1
    assert "pigeon" in err


def test_rules_keep_the_loaders_bound_on_max_defer_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_history(tmp_path, leads=10, bad=False)
    rules = tmp_path / "far.json"
    rules.write_text('{"max_defer_days": 31}')
    assert main(replay_args(paths, tmp_path / "o.jsonl", "--compare", str(rules))) == 2
    assert "max_defer_days" in capsys.readouterr().err


def test_a_line_that_is_not_utf8_is_skipped_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_history(tmp_path, leads=30, bad=False)
    lines = paths["leads"].read_bytes().splitlines(keepends=True)
    lines.insert(4, b'{"lead_id": "caf\xe9", "client_id": "acme"}\n')  # Latin-1, not UTF-8
    paths["leads"].write_bytes(b"".join(lines))
    run(replay_args(paths, tmp_path / "out.jsonl", "--report", str(tmp_path / "r")))
    errors = capsys.readouterr().err
    assert f"{paths['leads']} line 5: [invalid_encoding]" in errors
    assert len(records(tmp_path / "out.jsonl")) == 30
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["invalid_by_code"] == {"invalid_encoding": 1}


def test_baseline_uses_the_configured_send_hours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOCATOR_SEND_HOUR_EMAIL", "7")
    monkeypatch.setenv("ALLOCATOR_SEND_HOUR_LINKEDIN", "16")
    paths = write_history(tmp_path, leads=60, bad=False)
    run(replay_args(paths, tmp_path / "out.jsonl"))
    hours: dict[str, set[str]] = {"email": set(), "linkedin": set()}
    for allocation in records(tmp_path / "out.jsonl"):
        for entry in allocation["channels"]:  # type: ignore[attr-defined]
            if (
                entry["channel"] in hours
                and entry["timing_source"] == "default"
                and (entry["send_at"])
            ):
                hours[entry["channel"]].add(entry["send_at"][11:19])  # local wall time
    assert hours == {"email": {"07:00:00"}, "linkedin": {"16:00:00"}}


def test_rules_naming_a_resource_the_history_has_not_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_history(tmp_path, leads=10, bad=False)
    rules = tmp_path / "typo.json"
    rules.write_text('{"resource_limits": {"acme-seat-33": 5}}')
    assert main(replay_args(paths, tmp_path / "o.jsonl", "--compare", str(rules))) != 0
    err = capsys.readouterr().err
    assert "acme-seat-33" in err and "resource_limits" in err
    assert len(err.strip().splitlines()) <= 2


# --- round 2: warm-ups, weekly caps and pools in a replay and in --compare ----


def compare(tmp_path: Path, paths: dict[str, Path], rules: dict[str, Any]) -> dict[str, Any]:
    """Replay `paths` against `rules` with a report; compare.json as written."""
    variant = tmp_path / "variant.json"
    variant.write_text(json.dumps(rules))
    report = tmp_path / "r"
    run(
        setup_args(
            paths, tmp_path / "out.jsonl", "--report", str(report), "--compare", str(variant)
        )
    )
    written: dict[str, Any] = json.loads((report / "compare.json").read_text())
    return written


def test_a_28_day_warmup_against_a_14_day_one_sends_fewer_on_early_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 20 cold leads (email only) each weekday for four weeks, one domain warming
    # up by 2 a day to its 28 (14 days); the variant ramps every 2 days (28 days).
    paths = write_setup(tmp_path, weekday_leads(20, 4, score=30), [warmup_resource()])
    comparison = compare(
        tmp_path,
        paths,
        {"name": "28-day warm-up", "resources": {"mail.acme.io": {"warmup": {"every_days": 2}}}},
    )
    days = {d["day"]: d for d in comparison["sends_per_day_changed"]}
    # the first days send as the ramps allow: 2, 4, 6, 8, 10 against 2, 2, 4, 4, 6
    assert "2026-11-23" not in days  # 2 sends under both
    assert [(days[d]["baseline"], days[d]["variant"]) for d in sorted(days)[:4]] == [
        (4, 2),
        (6, 4),
        (8, 4),
        (10, 6),
    ]
    early = [d for d in days.values() if d["day"] < "2026-12-07"]
    assert early and all(d["change"] < 0 for d in early)
    assert all(d["channel"] == "email" for d in days.values())
    reasons = comparison["reasons"]
    assert reasons["variant"]["deferred_warmup"] > reasons["baseline"]["deferred_warmup"] > 0
    assert reasons["variant"]["none"] < reasons["baseline"]["none"]
    assert comparison["sends_moved_in_time"] > 0
    assert comparison["entries_with_another_reason"] > 0
    assert {"channel": "email", "baseline": "none", "variant": "deferred_warmup"} in [
        {k: c[k] for k in ("channel", "baseline", "variant")} for c in comparison["reason_changes"]
    ]
    assert comparison["variant"]["resources"] == {"mail.acme.io": {"warmup": {"every_days": 2}}}

    # the baseline's summary counts its reasons; the page shows both
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["reasons"] == reasons["baseline"]
    page = read(tmp_path / "r")
    assert page.table_after("quota day")[:3] == [
        ["quota day", "channel", "baseline sends", "variant sends", "change"],
        ["2026-11-24", "email", "4", "2", "-2"],
        ["2026-11-25", "email", "6", "4", "-2"],
    ]
    sides = next(t for t in page.tables if t[0][:3] == ["reason (code)", "baseline", "variant"])
    by_reason = {row[0]: row[1:] for row in sides}
    assert by_reason["deferred_warmup"][:2] == [
        str(reasons["baseline"]["deferred_warmup"]),
        str(reasons["variant"]["deferred_warmup"]),
    ]
    rules = {row[0]: row[1:] for row in page.table_after("rule")}
    assert rules["resource fields by resource"] == [
        "as given",
        "mail.acme.io: warmup {every_days 2}",
    ]
    assert "Why channel entries moved: reasons" in page.headings


def test_a_weekly_linkedin_cap_defers_sends_with_reason_deferred_weekly(tmp_path: Path) -> None:
    # 10 cool leads (email, linkedin) each weekday for two weeks; one seat with
    # room for 17 a day holds every send on its day until a weekly cap of 30.
    resources = [
        {"client_id": "acme", "channel": "email", "resource_id": "mail.acme.io"},
        {"client_id": "acme", "channel": "linkedin", "resource_id": "acme-seat-1"},
    ]
    paths = write_setup(tmp_path, weekday_leads(10, 2, score=45), resources)
    comparison = compare(
        tmp_path, paths, {"name": "weekly cap", "types": {"linkedin_seat": {"weekly_limit": 30}}}
    )
    base, variant = comparison["reasons"]["baseline"], comparison["reasons"]["variant"]
    assert base["deferred_weekly"] == 0 and base["none"] == 200
    assert variant["deferred_weekly"] > 0
    assert comparison["statuses"]["baseline"]["deferred"] == 0
    assert comparison["statuses"]["variant"]["deferred"] > 0
    moves = {(c["channel"], c["baseline"], c["variant"]) for c in comparison["reason_changes"]}
    assert ("linkedin", "none", "deferred_weekly") in moves
    assert all(channel == "linkedin" for channel, _, _ in moves)  # email has no weekly cap
    # never more than 30 sends of the seat in 7 days in a row
    sends = Counter(
        {
            d["day"]: d["variant"]
            for d in comparison["sends_per_day_changed"]
            if d["channel"] == "linkedin"
        }
    )
    assert sends and max(sends.values()) <= 30
    # the baseline's records say none of it
    for allocation in records(tmp_path / "out.jsonl"):
        for entry in allocation["channels"]:  # type: ignore[attr-defined]
            assert entry["reason"] is None


POOLED = [
    {"client_id": "acme", "channel": "email", "resource_id": "d1", "pool_id": "acme-mail"},
    {"client_id": "acme", "channel": "email", "resource_id": "d2", "pool_id": "acme-mail"},
]


def test_a_pool_the_resources_name_caps_their_sends_together(tmp_path: Path) -> None:
    pools = [{"client_id": "acme", "channel": "email", "pool_id": "acme-mail", "daily_limit": 5}]
    paths = write_setup(tmp_path, weekday_leads(8, 1, score=30), POOLED, pools)
    run(setup_args(paths, tmp_path / "out.jsonl", "--report", str(tmp_path / "r")))
    sent: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for allocation in records(tmp_path / "out.jsonl"):
        for entry in allocation["channels"]:  # type: ignore[attr-defined]
            codes[(entry["reason"] or {}).get("code", "none")] += 1
            if entry["status"] == "allocated":
                sent[entry["usage_day"]] += 1
    # two domains of 50 a day, but 5 a day between them
    assert set(sent.values()) == {5}
    assert codes["deferred_pool"] > 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["reasons"]["deferred_pool"] == codes["deferred_pool"]
    sources = [(s["kind"], s["origin"], s["records"]) for s in summary["inputs"]["sources"]]
    assert sources[-1] == ("pools", "file", 1)


def test_a_resources_file_naming_a_missing_pool_is_refused_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pools = [{"client_id": "acme", "channel": "email", "pool_id": "other", "daily_limit": 5}]
    resources = [{"client_id": "acme", "channel": "email", "resource_id": "d0"}, *POOLED]
    paths = write_setup(tmp_path, weekday_leads(2, 1, score=30), resources, pools)
    assert main(setup_args(paths, tmp_path / "out.jsonl")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"replay: {paths['resources']}: 2 bad line(s)")
    assert "line 2: pool_id: client 'acme' has no email pool 'acme-mail'" in err
    assert "line 3: pool_id:" in err
    assert f"(pools read from --pools {paths['pools']})" in err
    assert not (tmp_path / "out.jsonl").exists()


def test_without_pools_a_replay_reads_the_databases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    paths = write_setup(tmp_path, weekday_leads(8, 1, score=30), POOLED)
    # no pool in the database yet: refused, as `resources load` would refuse it
    assert main(setup_args(paths, tmp_path / "out.jsonl")) == 2
    err = capsys.readouterr().err
    assert "line 1: pool_id: client 'acme' has no email pool 'acme-mail'" in err
    assert "(pools read from the database)" in err
    pools = tmp_path / "db-pools.jsonl"
    pools.write_text(
        '{"client_id": "acme", "channel": "email", "pool_id": "acme-mail", "daily_limit": 3}\n'
    )
    assert main(["pools", "load", str(pools)]) == 0
    run(setup_args(paths, tmp_path / "out.jsonl", "--report", str(tmp_path / "r")))
    sent = Counter(
        entry["usage_day"]
        for allocation in records(tmp_path / "out.jsonl")
        for entry in allocation["channels"]  # type: ignore[attr-defined]
        if entry["status"] == "allocated"
    )
    assert set(sent.values()) == {3}
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    pools_source = summary["inputs"]["sources"][-1]
    assert (pools_source["kind"], pools_source["origin"], pools_source["records"]) == (
        "pools",
        "database",
        1,
    )


def test_no_resource_naming_a_pool_opens_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "never.db"
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    resources = [{"client_id": "acme", "channel": "email", "resource_id": "d1"}]
    paths = write_setup(tmp_path, weekday_leads(2, 1, score=30), resources)
    run(setup_args(paths, tmp_path / "out.jsonl", "--report", str(tmp_path / "r")))
    assert not database.exists()
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert [s["kind"] for s in summary["inputs"]["sources"]] == ["leads", "clients", "resources"]


def test_rules_may_add_a_pool_and_put_resources_in_it(tmp_path: Path) -> None:
    resources = [{**r, "pool_id": None} for r in POOLED]
    paths = write_setup(tmp_path, weekday_leads(8, 1, score=30), resources, pools=[])
    comparison = compare(
        tmp_path,
        paths,
        {
            "name": "one domain pool",
            "pools": [
                {"client_id": "acme", "channel": "email", "pool_id": "acme-mail", "daily_limit": 4}
            ],
            "types": {"email_domain": {"pool_id": "acme-mail"}},
        },
    )
    assert comparison["reasons"]["baseline"]["deferred_pool"] == 0
    assert comparison["reasons"]["variant"]["deferred_pool"] > 0
    assert {d["variant"] for d in comparison["sends_per_day_changed"]} <= {4}


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        ({"resources": {"mail.acme.io": {"warmup": {"every_days": 0}}}},
         "resources.mail.acme.io.warmup.every_days: must be in 1..366, got 0"),
        ({"types": {"linkedin_seat": {"weekly_limit": -1}}},
         "types.linkedin_seat.weekly_limit: must be in 0..1000000, got -1"),
        ({"clients": {"umbrella": {"lead_daily_limit": 1}}},
         "clients: no client umbrella in this history (the clients given)"),
        ({"resources": {"mail.acme.io": {"pool_id": "nowhere"}}},
         "resources: resource 'mail.acme.io': pool_id: client 'acme' has no email pool 'nowhere'"),
    ],
)  # fmt: skip
def test_a_bad_round_two_rule_is_refused_in_one_line_before_any_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rules: dict[str, Any], problem: str
) -> None:
    paths = write_setup(tmp_path, weekday_leads(2, 1, score=30), [warmup_resource()])
    variant = tmp_path / "bad.json"
    variant.write_text(json.dumps(rules))
    assert main(setup_args(paths, tmp_path / "out.jsonl", "--compare", str(variant))) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"replay: --compare {variant}: {problem}")
    assert err.count("\n") == 1
    assert not (tmp_path / "out.jsonl").exists()  # refused before the baseline ran


def test_the_databases_resources_naming_a_pool_the_pools_file_lacks_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    pools = [{"client_id": "acme", "channel": "email", "pool_id": "acme-mail", "daily_limit": 3}]
    paths = write_setup(tmp_path, weekday_leads(2, 1, score=30), POOLED, pools)
    for kind in ("clients", "pools", "resources"):
        assert main([kind, "load", str(paths[kind])]) == 0
    other = write_lines(tmp_path / "other-pools.jsonl", [{**pools[0], "pool_id": "elsewhere"}])
    args = ["replay", "--leads", str(paths["leads"]), "--pools", str(other)]
    assert main([*args, "--out", str(tmp_path / "out.jsonl"), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        "replay: resource 'd1' of client 'acme' (the database's) names email pool 'acme-mail', "
        f"which --pools {other} does not have\n"
    )
    # the database's own pools hold it
    run(["replay", "--leads", str(paths["leads"]), "--out", str(tmp_path / "out.jsonl"), "--quiet"])


# --- round 2: send windows, holidays and pacing in --compare ------------------

ONE_DOMAIN = [{"client_id": "acme", "channel": "email", "resource_id": "mail.acme.io"}]


def test_a_us_holiday_calendar_moves_sends_off_thanksgiving_and_christmas(
    tmp_path: Path,
) -> None:
    # 4 cold leads (email only) each weekday for five weeks from Monday 2026-11-23:
    # Thursday 2026-11-26 is Thanksgiving and Friday 2026-12-25 Christmas.
    paths = write_setup(tmp_path, weekday_leads(4, 5, score=30), ONE_DOMAIN)
    comparison = compare(
        tmp_path, paths, {"name": "US holidays", "clients": {"*": {"holidays": "US"}}}
    )
    # each holiday's sends go out on the next allowed day: Friday, and past the
    # weekend Monday
    assert [
        (d["day"], d["baseline"], d["variant"]) for d in comparison["sends_per_day_changed"]
    ] == [
        ("2026-11-26", 4, 0),
        ("2026-11-27", 4, 8),
        ("2026-12-25", 4, 0),
        ("2026-12-28", 0, 4),  # the history ends on Christmas
    ]
    base, variant = comparison["reasons"]["baseline"], comparison["reasons"]["variant"]
    assert (base["moved_holiday"], variant["moved_holiday"]) == (0, 8)
    assert comparison["reason_changes"] == [
        {"channel": "email", "baseline": "none", "variant": "moved_holiday", "count": 8}
    ]
    assert comparison["sends_moved_in_time"] == 8
    assert comparison["variant"]["clients"] == {"*": {"holidays": "US"}}

    page = read(tmp_path / "r")
    rules = {row[0]: row[1:] for row in page.table_after("rule")}
    assert rules["client fields"] == ["as given", "every client: holidays US"]
    sides = next(t for t in page.tables if t[0][:3] == ["reason (code)", "baseline", "variant"])
    assert {row[0]: row[1:] for row in sides}["moved_holiday"] == ["0", "8", "+8"]


def test_rules_may_set_send_windows_blackout_dates_and_pacing(tmp_path: Path) -> None:
    paths = write_setup(tmp_path, weekday_leads(4, 1, score=30), ONE_DOMAIN)
    window = {"days": [0, 1, 2, 3, 4], "start": "10:30", "end": "17:00"}
    changes = {
        "send_windows": {"email": window},
        "blackout_dates": ["2026-11-24"],
        "pacing": {"email": {"gap_seconds": 600}},
    }
    comparison = compare(tmp_path, paths, {"name": "quiet", "clients": {"*": changes}})
    assert comparison["variant"]["clients"] == {"*": changes}
    variant = comparison["reasons"]["variant"]
    # Tuesday is blacked out; every other send waits for the window at 10:30
    assert variant["moved_holiday"] == 4 and variant["moved_window"] == 16
    days = {d["day"]: (d["baseline"], d["variant"]) for d in comparison["sends_per_day_changed"]}
    assert days == {"2026-11-24": (4, 0), "2026-11-25": (4, 8)}
    # and every send moved: to the window, then paced 10 minutes apart
    assert comparison["sends_moved_in_time"] == 20
