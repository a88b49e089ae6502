"""The replay report: summary.json and compare.json as written, and index.html read
as HTML (never rendered here; tests/integration/test_report_browser.py renders it):
plotly embedded for offline use, each chart named and fed from the summary, a
legend for every status, the client menu, the inputs covered, the tables' cells
in words."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from allocator.channels import Channel, ResourceType
from allocator.errors import ErrorCode
from allocator.models import Pool
from allocator.replay.report import REASON_MEANINGS, write_report
from allocator.replay.rules import Rules
from allocator.replay.summary import (
    REASONS,
    CapacityNeed,
    ClientDayCount,
    Comparison,
    DayCount,
    EntryCount,
    Inputs,
    InputSource,
    ReasonChange,
    ReasonCount,
    ReplaySummary,
    ResourceUse,
    SendChanges,
    SendMinuteCount,
    SendTimeCount,
    SkippedRecord,
    TierCounts,
)

CHART_TITLES = [
    "Channel entries per day, by status (day: the send's quota day, else the day it asked for)",
    "Resource utilisation against its daily limit (%)",
    "Share of channel entries deferred and exhausted, by tier",
    "Send times: local time of day by channel, and by weekday",
]
COMPARISON_TITLES = [
    "Channel entries by status: baseline and variant side by side",
    "Capacity shortfall on the busiest day, by client and channel: baseline and variant",
    "Usage balance: mean daily spread of sends across equal-limit resources (0 = even)",
]
# The statuses in words, as a reader of the page sees them (written out here,
# not imported: the test is an independent reading of what the page must say).
WORDS = {
    "allocated": "allocated on the day asked for",
    "deferred": "deferred: allocated on a later day",
    "exhausted": "exhausted",
    "no_resource": "no resource",
    "suppressed": "suppressed (the lead stopped)",
}


def statuses(
    allocated: int, deferred: int, exhausted: int, no_resource: int, suppressed: int = 0
) -> dict[str, int]:
    return {
        "allocated": allocated,
        "deferred": deferred,
        "exhausted": exhausted,
        "no_resource": no_resource,
        "suppressed": suppressed,
    }


LEADS_FILE = "/data/leads.jsonl"


def sample(name: str = "baseline", spread: float = 0.5) -> ReplaySummary:
    """Three leads: two hot of acme (email and linkedin each), one cold of globex (email)."""
    return ReplaySummary(
        rules={**Rules().describe(), "name": name},
        leads=3,
        invalid_by_code={"invalid_json": 2},
        statuses=statuses(3, 1, 0, 4),
        by_tier=(
            TierCounts("cold", 1, statuses(1, 0, 0, 3)),
            TierCounts("hot", 2, statuses(2, 1, 0, 1)),
        ),
        entries=(
            EntryCount("cold", "email", "allocated", 1),
            EntryCount("hot", "email", "allocated", 2),
            EntryCount("hot", "linkedin", "deferred", 1),
        ),
        per_day=(
            DayCount("2026-11-27", "email", "allocated", 3),
            DayCount("2026-11-30", "linkedin", "deferred", 1),
        ),
        resources=(
            ResourceUse("acme", "email", "d1", 4, 1, 3, 3.0, 3, 0.75, 0.75),
            ResourceUse("acme", "direct_mail", "post", None, 1, 1, 1.0, 1, None, None),
        ),
        capacity_needed=(
            CapacityNeed("acme", "direct_mail", "2026-11-27", 1, None, 0),
            CapacityNeed("acme", "linkedin", "2026-11-27", 1, 0, 1),
        ),
        usage_balance_spread=spread,
        send_times=(SendTimeCount(4, 9, 2), SendTimeCount(0, 10, 1)),
        # paced: acme's two emails 7 minutes apart, over a 10-minute boundary
        send_minutes=(
            SendMinuteCount("email", 9, 4, 1),
            SendMinuteCount("email", 9, 11, 1),
            SendMinuteCount("linkedin", 10, 0, 1),
        ),
        per_client_day=(
            ClientDayCount("acme", "2026-11-27", "email", "allocated", 2),
            ClientDayCount("acme", "2026-11-30", "linkedin", "deferred", 1),
            ClientDayCount("globex", "2026-11-27", "email", "allocated", 1),
        ),
        leads_by_client={"acme": 2, "globex": 1},
        unknown_clients=("globex",),
        inputs=Inputs(
            sources=(
                InputSource("leads", "file", LEADS_FILE, 3, 2),
                InputSource(
                    "patterns",
                    "topic",
                    "patterns",
                    4,
                    0,
                    "from the start up to (not including) offset 9",
                ),
                InputSource("clients", "database", "ALLOCATOR_DATABASE_URL", 2),
                InputSource("resources", "database", "ALLOCATOR_DATABASE_URL", 2),
            ),
            leads_read=3,
            patterns_read=4,
            first_scored_at="2026-11-26T09:00:00+00:00",
            last_scored_at="2026-11-27T17:30:00+00:00",
            skipped=(
                SkippedRecord(LEADS_FILE, "line 2", "invalid_json", "value is not JSON"),
                SkippedRecord(LEADS_FILE, "line 5", "invalid_json", "value is not JSON"),
            ),
            skipped_total=2,
        ),
    )


class Page(HTMLParser):
    """What a reader of the page gets: scripts, headings, paragraphs, list items,
    tables, charts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.headings: list[str] = []
        self.paragraphs: list[str] = []
        self.items: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.chart_divs = 0
        self.tags: list[str] = []
        self._text: list[str] = []
        self._attrs: dict[str, str | None] = {}
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("script", "h1", "h2", "h3", "p", "li", "th", "td"):
            self._text, self._attrs = [], dict(attrs)
        if tag == "table":
            self.tables.append([])
        if tag == "tr":
            self.tables[-1].append([])
        if tag == "div" and "plotly-graph-div" in (dict(attrs).get("class") or ""):
            self.chart_divs += 1

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        text = "".join(self._text)
        if tag == "script":
            self.scripts.append((self._attrs, text))
        elif tag in ("h1", "h2", "h3"):
            self.headings.append(text)
        elif tag == "p":
            self.paragraphs.append(text)
        elif tag == "li":
            self.items.append(text)
        elif tag in ("th", "td"):
            self.tables[-1][-1].append(text)

    def table_after(self, heading: str, skip: int = 0) -> list[list[str]]:
        """The table `skip` tables after the first one that starts with `heading`."""
        starts = [i for i, t in enumerate(self.tables) if t and t[0][0] == heading]
        return self.tables[starts[0] + skip]

    def text(self) -> str:
        return " ".join([*self.headings, *self.paragraphs, *self.items])

    def figures(self) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
        """(traces, layout) of every Plotly.newPlot call, in page order."""
        decoder = json.JSONDecoder()
        found = []
        for _, text in self.scripts:
            at = text.find("Plotly.newPlot(")
            if at < 0:
                continue
            rest = text[at + len("Plotly.newPlot(") :]
            values: list[Any] = []
            for _ in range(3):  # the div id, the traces, the layout
                rest = rest.lstrip().removeprefix(",").lstrip()
                value, end = decoder.raw_decode(rest)
                values.append(value)
                rest = rest[end:]
            found.append((values[1], values[2]))
        return found


def read(directory: Path) -> Page:
    return Page((directory / "index.html").read_text(encoding="utf-8"))


def shown(traces: list[dict[str, Any]], mask: list[bool] | None = None) -> list[dict[str, Any]]:
    """The traces a reader sees: those visible at first, or under a menu's mask."""
    if mask is None:
        return [t for t in traces if t.get("visible", True) is not False]
    return [t for t, on in zip(traces, mask, strict=True) if on]


def drawn(traces: list[dict[str, Any]]) -> list[tuple[str, str, list[str], list[int]]]:
    """(axis, name, x, y) of the traces that draw bars (not the legend's keys)."""
    return [
        (t.get("xaxis", "x"), t["name"], t["x"], t["y"])
        for t in traces
        if t["x"] != [None]  # a legend key draws nothing
    ]


def test_summary_json_is_the_summary_sorted_and_no_compare_json_without_a_variant(
    tmp_path: Path,
) -> None:
    summary = sample()
    page = write_report(tmp_path / "r", summary)
    assert page == tmp_path / "r" / "index.html" and page.is_file()
    assert not (tmp_path / "r" / "compare.json").exists()
    text = (tmp_path / "r" / "summary.json").read_text()
    written = json.loads(text)
    assert written == summary.to_json()
    assert text == json.dumps(written, indent=2, sort_keys=True) + "\n"
    # figures derived on the way out, counted by hand
    assert written["invalid_records"] == 2
    assert written["channel_entries"] == 8
    assert written["allocated_any_day"] == 4  # 3 on the day asked for + 1 deferred
    assert written["by_tier"]["hot"] == {
        "leads": 2,
        "channel_entries": 4,
        **statuses(2, 1, 0, 1),
        "deferred_share": 0.25,
        "exhausted_share": 0.0,
    }
    assert written["resources"][1]["daily_limit"] is None
    assert written["leads_by_client"] == {"acme": 2, "globex": 1}
    assert written["per_client_day"][2] == {
        "client_id": "globex",
        "day": "2026-11-27",
        "channel": "email",
        "status": "allocated",
        "count": 1,
    }
    inputs = written["inputs"]
    assert inputs["sources"][0] == {
        "kind": "leads",
        "origin": "file",
        "name": LEADS_FILE,
        "records": 3,
        "skipped": 2,
        "window": None,
    }
    assert inputs["first_scored_at"] == "2026-11-26T09:00:00+00:00"
    assert inputs["skipped_total"] == 2
    assert inputs["skipped_listed"][1]["where"] == "line 5"


def test_the_page_embeds_plotly_and_fetches_nothing(tmp_path: Path) -> None:
    page = read(write_report(tmp_path, sample()).parent)
    assert page.scripts and all(attrs.get("src") is None for attrs, _ in page.scripts)
    library = [text for _, text in page.scripts if "plotly.js v" in text]
    assert len(library) == 1 and len(library[0]) > 1_000_000  # the whole library, once
    assert "<link" not in (tmp_path / "index.html").read_text()


def test_the_page_names_its_four_charts_and_draws_them_from_the_summary(tmp_path: Path) -> None:
    page = read(write_report(tmp_path, sample()).parent)
    assert page.chart_divs == 4
    figures = page.figures()
    assert [layout["title"]["text"] for _, layout in figures] == CHART_TITLES
    per_day, utilisation, tiers, send_times = figures

    # one subplot per channel with entries, in channel order; days on a date axis
    traces, layout = per_day
    assert [a["text"] for a in layout["annotations"]] == ["email", "linkedin"]
    assert layout["xaxis"]["type"] == "date"
    assert drawn(shown(traces)) == [
        ("x", WORDS["allocated"], ["2026-11-27"], [3]),
        ("x2", WORDS["deferred"], ["2026-11-30"], [1]),
    ]

    # the unlimited mail vendor has no utilisation to show
    traces, _ = utilisation
    assert [(t["name"], t["x"], t["y"]) for t in shown(traces)] == [
        ("mean day", ["acme / d1"], [75.0]),
        ("busiest day", ["acme / d1"], [75.0]),
    ]

    traces, _ = tiers
    assert [(t["name"], t["x"], t["y"]) for t in traces] == [
        (WORDS["deferred"], ["hot", "cold"], [25.0, 0.0]),
        (WORDS["exhausted"], ["hot", "cold"], [0.0, 0.0]),
    ]

    # above: sends per 10 minutes of the local day (x: minutes, at each bin's
    # middle), by channel; below: by weekday and hour
    *bars, heatmap = send_times[0]
    layout = send_times[1]
    assert [(t["name"], t["x"], t["y"], t["customdata"]) for t in bars] == [
        ("email", [545, 555], [1, 1], ["09:00-09:10", "09:10-09:20"]),
        ("linkedin", [605], [1], ["10:00-10:10"]),
    ]
    assert all(t["width"] == 10 and t.get("xaxis", "x") == "x" for t in bars)
    assert [a["text"] for a in layout["annotations"]] == [
        "sends per 10 minutes of local time, by channel",
        "sends by weekday and local hour",
    ]
    # an hour either side of the hours sent, labelled in hh:mm
    assert layout["xaxis"]["range"] == [480, 720]
    assert layout["xaxis2"]["ticktext"][:2] == ["08:00", "09:00"]
    assert heatmap["type"] == "heatmap" and heatmap["xaxis"] == "x2"
    assert heatmap["y"] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert heatmap["x"][9] == 9 * 60 + 30  # an hour's column, centred on it
    assert heatmap["z"][4][9] == 2 and heatmap["z"][0][10] == 1
    assert sum(map(sum, heatmap["z"])) == 3
    assert "The busiest 10 minutes of the local day, 09:00-09:10, hold 1 of the 3 sends" in (
        " ".join(page.paragraphs)
    )


def test_a_summary_without_send_minutes_draws_the_weekday_chart_alone(tmp_path: Path) -> None:
    # A summary made before minutes were counted: no bars, the day's hours as before.
    page = read(write_report(tmp_path, replace(sample(), send_minutes=())).parent)
    traces, layout = page.figures()[3]
    assert [t["type"] for t in traces] == ["heatmap"]
    assert layout["xaxis2"]["range"] == [480, 720]
    assert not any("busiest 10 minutes" in p for p in page.paragraphs)


def test_every_status_has_a_legend_entry_even_without_bars(tmp_path: Path) -> None:
    # The sample has no exhausted or no-resource entry on any day: their keys
    # must show all the same (the grey bars once had none).
    page = read(write_report(tmp_path, sample()).parent)
    traces, _ = page.figures()[0]
    keys = [t["name"] for t in shown(traces) if t.get("showlegend", True)]
    assert keys == list(WORDS.values())
    colours = {t["name"]: t["marker"]["color"] for t in shown(traces)}
    assert len(set(colours.values())) == len(WORDS)
    # and on the page, each status with its colour, its name and what it means
    legend = [item for item in page.items if "):" in item]
    assert [item.split(f" ({code}):")[0] for code, item in zip(WORDS, legend, strict=True)] == list(
        WORDS.values()
    )


def test_deferred_is_said_to_be_allocated_on_a_later_day_a_subset_of_allocated(
    tmp_path: Path,
) -> None:
    page = read(write_report(tmp_path, sample()).parent)
    deferred = next(item for item in page.items if item.startswith(WORDS["deferred"]))
    assert "later day than the send asked for" in deferred
    assert "allocation records call these allocated" in deferred
    assert "of which deferred" in deferred  # the demo's words
    # the overview adds them up as a record does: 3 on the day + 1 deferred = 4 allocated
    assert any(
        "4 allocated (3 on the day asked for and 1 deferred to a later day)" in p
        for p in page.paragraphs
    )
    overview = page.table_after("leads decided")
    assert overview == [
        [
            "leads decided",
            "input records skipped",
            *WORDS.values(),
            "allocated on any day (on the day + deferred)",
        ],
        ["3", "2", "3", "1", "0", "4", "0", "4"],
    ]


def test_a_client_menu_shows_one_clients_days_and_resources(tmp_path: Path) -> None:
    page = read(write_report(tmp_path, sample()).parent)
    (traces, layout), (use_traces, use_layout) = page.figures()[:2]
    (menu,) = layout["updatemenus"]
    assert [b["label"] for b in menu["buttons"]] == [
        "all clients",
        "client: acme",
        "client: globex",
    ]
    by_label = {b["label"]: b["args"][0]["visible"] for b in menu["buttons"]}
    assert drawn(shown(traces, by_label["client: globex"])) == [
        ("x", WORDS["allocated"], ["2026-11-27"], [1]),
    ]
    assert drawn(shown(traces, by_label["client: acme"])) == [
        ("x", WORDS["allocated"], ["2026-11-27"], [2]),
        ("x2", WORDS["deferred"], ["2026-11-30"], [1]),
    ]
    # every view keeps a key for every status
    keys = [t["name"] for t in shown(traces, by_label["client: globex"]) if t["x"] == [None]]
    assert keys == list(WORDS.values())

    # globex has no resource with a limit: its resources' menu lists acme only
    (menu,) = use_layout["updatemenus"]
    assert [b["label"] for b in menu["buttons"]] == ["all clients", "client: acme"]
    acme = menu["buttons"][1]["args"][0]["visible"]
    assert [t["x"] for t in shown(use_traces, acme)] == [["acme / d1"], ["acme / d1"]]

    # the per-client table, and what is not drawn is said
    assert page.table_after("client") == [
        ["client", "leads", *WORDS.values(), "busiest resource-day (% of its daily limit)"],
        ["acme", "2", "2", "1", "0", "0", "0", "75%"],
        ["globex", "1", "1", "0", "0", "0", "0", "-"],
    ]
    assert "Clients not among the clients given, decided with no resources: globex." in (
        page.paragraphs
    )
    assert any("without a daily limit" in p and "acme / post" in p for p in page.paragraphs)


def test_the_page_says_which_inputs_it_covers_and_what_it_skipped(tmp_path: Path) -> None:
    page = read(write_report(tmp_path, sample()).parent)
    assert "Inputs covered" in page.headings
    assert (
        "Leads scored from 2026-11-26 09:00:00+00:00 to 2026-11-27 17:30:00+00:00: "
        "3 valid leads and 4 patterns read." in page.paragraphs
    )
    assert page.table_after("input") == [
        ["input", "read from", "name", "records read", "records skipped", "window"],
        ["leads", "file", LEADS_FILE, "3", "2", "-"],
        [
            "patterns",
            "topic",
            "patterns",
            "4",
            "0",
            "from the start up to (not including) offset 9",
        ],
        ["clients", "database", "ALLOCATOR_DATABASE_URL", "2", "0", "-"],
        ["resources", "database", "ALLOCATOR_DATABASE_URL", "2", "0", "-"],
    ]
    assert page.table_after("reason (error code)") == [
        ["reason (error code)", "records skipped"],
        ["invalid_json", "2"],
    ]
    assert page.table_after("source") == [
        ["source", "where", "reason (error code)", "what is wrong"],
        [LEADS_FILE, "line 2", "invalid_json", "value is not JSON"],
        [LEADS_FILE, "line 5", "invalid_json", "value is not JSON"],
    ]


def test_skipped_records_beyond_the_listed_ones_are_counted(tmp_path: Path) -> None:
    base = sample()
    listed = (SkippedRecord("f", "line 1", ErrorCode.INVALID_JSON, "not JSON"),)
    summary = replace(
        base,
        invalid_by_code={"invalid_json": 250},
        inputs=Inputs(sources=base.inputs.sources, skipped=listed, skipped_total=250),
    )
    page = read(write_report(tmp_path, summary).parent)
    assert "… and 249 more skipped records, counted above." in page.paragraphs
    assert "No valid lead was read (0 patterns read)." in page.paragraphs


def test_a_summary_without_inputs_or_skips_says_so(tmp_path: Path) -> None:
    summary = replace(sample(), invalid_by_code={}, inputs=Inputs())
    page = read(write_report(tmp_path, summary).parent)
    assert "This summary does not record where its inputs were read." in page.paragraphs
    assert "No input record was skipped." in page.paragraphs


def test_the_capacity_table_is_in_words_with_an_unlimited_capacity(tmp_path: Path) -> None:
    page = read(write_report(tmp_path, sample()).parent)
    assert page.headings[0] == "Allocator replay report"
    assert "Rules: baseline" in page.paragraphs
    assert page.table_after("client", skip=1) == [
        [
            "client",
            "channel",
            "busiest day asked for",
            "sends asked for that day",
            "daily capacity (sends)",
            "shortfall (sends)",
        ],
        ["acme", "direct_mail", "2026-11-27", "1", "unlimited", "0"],
        ["acme", "linkedin", "2026-11-27", "1", "0", "1"],
    ]
    assert any("is 0.5 sends (0 means sends spread perfectly evenly)" in p for p in page.paragraphs)


def test_a_rules_name_is_text_not_markup(tmp_path: Path) -> None:
    page = read(write_report(tmp_path, sample(name="<b>bold</b> & co")).parent)
    assert "Rules: <b>bold</b> & co" in page.paragraphs
    assert page.tags.count("b") == len(WORDS)  # the legend's status names only


def test_a_comparison_writes_compare_json_and_draws_both_sides(tmp_path: Path) -> None:
    baseline = sample()
    variant = replace(
        sample(name="double limits", spread=0.25),
        statuses=statuses(6, 0, 0, 2),
        capacity_needed=(CapacityNeed("acme", "linkedin", "2026-11-27", 1, 1, 0),),
    )
    changes = SendChanges(moved_in_time=5, on_another_resource=1, newly_served=2)
    comparison = Comparison(baseline, variant, changes)
    page = read(write_report(tmp_path, baseline, comparison).parent)

    written = json.loads((tmp_path / "compare.json").read_text())
    assert written == comparison.to_json()
    assert written["variant"]["name"] == "double limits"
    assert written["sends_no_longer_served"] == 0
    assert written["usage_balance_spread"] == {"baseline": 0.5, "variant": 0.25}

    assert "Baseline vs double limits" in page.headings
    assert page.table_after("rule") == [
        ["rule", "baseline", "variant"],
        ["name", "baseline", "double limits"],
        ["WHEN/HOW patterns", "used", "used"],
        ["days a send may be deferred", "each client's own", "each client's own"],
        ["daily limit by resource type", "as given", "as given"],
        ["daily limit of named resources", "as given", "as given"],
        ["default send hour by channel", "as given", "as given"],
        ["resources added", "none", "none"],
        ["client fields", "as given", "as given"],
        ["resource fields by resource type", "as given", "as given"],
        ["resource fields by resource", "as given", "as given"],
        ["pools added or replaced", "none", "none"],
    ]
    assert page.table_after("status") == [
        ["status", "baseline", "variant", "change (variant minus baseline)"],
        [WORDS["allocated"], "3", "6", "+3"],
        [WORDS["deferred"], "1", "0", "-1"],
        [WORDS["exhausted"], "0", "0", "+0"],
        [WORDS["no_resource"], "4", "2", "-2"],
        [WORDS["suppressed"], "0", "0", "+0"],
        ["allocated on any day", "4", "6", "+2"],
    ]
    assert page.table_after("sends moved to another time") == [
        [
            "sends moved to another time",
            "sends on another resource, same time",
            "sends newly served",
            "sends no longer served",
            "channel entries with another reason",
        ],
        ["5", "1", "2", "0", "0"],
    ]

    figures = page.figures()
    assert page.chart_divs == 7
    assert [layout["title"]["text"] for _, layout in figures[4:]] == COMPARISON_TITLES
    (status_traces, _), (shortfall_traces, _), ((balance,), _) = figures[4:]
    assert [(t["name"], t["y"]) for t in status_traces] == [
        ("baseline", [3, 1, 0, 4, 0]),
        ("variant (double limits)", [6, 0, 0, 2, 0]),
    ]
    assert status_traces[0]["x"] == list(WORDS.values())
    assert [(t["name"], t["x"], t["y"]) for t in shortfall_traces] == [
        ("baseline", ["acme / direct_mail", "acme / linkedin"], [0, 1]),
        ("variant (double limits)", ["acme / direct_mail", "acme / linkedin"], [0, 0]),
    ]
    assert (balance["x"], balance["y"]) == (["baseline", "variant (double limits)"], [0.5, 0.25])

    # usage balance in a sentence, never a dict's repr
    assert any(
        "Baseline: 0.5 sends; variant: 0.25 sends (more even under the variant)." in p
        for p in page.paragraphs
    )
    assert not re.search(r"\{'\w+': ", page.text())
    assert "{'baseline'" not in (tmp_path / "index.html").read_text()


# --- reasons (CONTRACT.md section 11) -----------------------------------------


def with_reasons(summary: ReplaySummary, **counts: int) -> ReplaySummary:
    """`summary` whose acme email entries had these reasons (the rest: none)."""
    reasons = dict.fromkeys(REASONS, 0) | counts
    by_reason = tuple(ReasonCount("acme", "email", r, n) for r, n in counts.items() if n)
    return replace(summary, reasons=reasons, by_reason=by_reason)


def test_the_page_counts_channel_entries_by_reason_with_a_bar_each(tmp_path: Path) -> None:
    summary = with_reasons(sample(), none=5, deferred_weekly=2, exhausted=1)
    summary = replace(
        summary, by_reason=(*summary.by_reason, ReasonCount("acme", "linkedin", "none", 0))
    )
    page = read(write_report(tmp_path, summary).parent)
    assert "Why channel entries moved: reasons" in page.headings
    assert page.table_after("reason (code)") == [
        ["reason (code)", "what it means", "channel entries", "share of channel entries"],
        [
            "none (at its first slot)",
            "allocated at the slot its pattern or the default schedule gave.",
            "5",
            "62.5%",
        ],
        [
            "deferred_weekly",
            "deferred: the resources were at their weekly limit (the day and the 6 before it).",
            "2",
            "25.0%",
        ],
        [
            "exhausted",
            "no resource had room on any day up to the client's max_defer_days.",
            "1",
            "12.5%",
        ],
    ]
    assert page.table_after("reason (code)", skip=1) == [
        ["reason (code)", "email", "linkedin"],
        ["none (at its first slot)", "5", "0"],
        ["deferred_weekly", "2", "0"],
        ["exhausted", "1", "0"],
    ]
    html = (tmp_path / "index.html").read_text()
    assert html.count('class="bar"') == 3
    assert 'style="width:100px"' in html  # 62.5% of 160 px
    # every code the contract lists has its words
    assert set(REASON_MEANINGS) == set(REASONS)
    # and summary.json keeps them
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["reasons"]["deferred_weekly"] == 2


def test_a_summary_without_reasons_says_so(tmp_path: Path) -> None:
    page = read(write_report(tmp_path, sample()).parent)
    assert "This summary does not count reasons." in page.paragraphs


def test_a_comparison_shows_reasons_side_by_side_how_they_changed_and_the_days(
    tmp_path: Path,
) -> None:
    baseline = with_reasons(sample(), none=6, deferred_full=2)
    variant = replace(
        with_reasons(sample(name="weekly cap"), none=3, deferred_full=1, deferred_weekly=4),
        per_day=(
            DayCount("2026-11-27", "email", "allocated", 1),
            DayCount("2026-11-30", "linkedin", "deferred", 1),
            DayCount("2026-12-01", "linkedin", "deferred", 2),
            DayCount("2026-12-01", "email", "exhausted", 5),  # not a send
        ),
    )
    changes = SendChanges(
        moved_in_time=2,
        another_reason=5,
        reason_changes=(
            ReasonChange("linkedin", "none", "deferred_weekly", 3),
            ReasonChange("linkedin", "deferred_full", "deferred_weekly", 1),
            ReasonChange("email", "none", "deferred_full", 1),
        ),
    )
    page = read(write_report(tmp_path, baseline, Comparison(baseline, variant, changes)).parent)
    assert {"Reasons: baseline and variant", "How reasons changed"} <= set(page.headings)
    sides = next(t for t in page.tables if t[0][:3] == ["reason (code)", "baseline", "variant"])
    assert sides == [
        ["reason (code)", "baseline", "variant", "change (variant minus baseline)"],
        ["none (at its first slot)", "6", "3", "-3"],
        ["deferred_full", "2", "1", "-1"],
        ["deferred_weekly", "0", "4", "+4"],
    ]
    assert page.table_after("channel") == [
        ["channel", "reason in the baseline", "reason under the variant", "channel entries"],
        ["linkedin", "none (at its first slot)", "deferred_weekly", "3"],
        ["linkedin", "deferred_full", "deferred_weekly", "1"],
        ["email", "none (at its first slot)", "deferred_full", "1"],
    ]
    # the sample's baseline sends 3 emails on the 27th and 1 linkedin on the 30th
    assert page.table_after("quota day") == [
        ["quota day", "channel", "baseline sends", "variant sends", "change"],
        ["2026-11-27", "email", "3", "1", "-2"],
        ["2026-12-01", "linkedin", "0", "2", "+2"],
    ]
    moves = page.table_after("sends moved to another time")
    assert moves[0][-1] == "channel entries with another reason" and moves[1][-1] == "5"
    written = json.loads((tmp_path / "compare.json").read_text())
    assert written["entries_with_another_reason"] == 5
    assert written["reasons"]["variant"]["deferred_weekly"] == 4
    assert written["reason_changes"][0] == {
        "channel": "linkedin",
        "baseline": "none",
        "variant": "deferred_weekly",
        "count": 3,
    }
    assert written["sends_per_day_changed"] == [
        {"day": "2026-11-27", "channel": "email", "baseline": 3, "variant": 1, "change": -2},
        {"day": "2026-12-01", "channel": "linkedin", "baseline": 0, "variant": 2, "change": 2},
    ]
    assert page.chart_divs == 7  # tables, not charts: the charts are as before


def test_long_comparison_tables_are_cut_and_the_rest_counted(tmp_path: Path) -> None:
    baseline = sample()
    days = tuple(
        DayCount(f"2027-{month:02d}-{day:02d}", "email", "allocated", 1)
        for month in (1, 2, 3)
        for day in range(1, 29)
    )
    variant = replace(sample(name="more"), per_day=days)
    moves = tuple(ReasonChange("email", "none", f"code-{n}", 30 - n) for n in range(25))
    comparison = Comparison(baseline, variant, SendChanges(reason_changes=moves))
    page = read(write_report(tmp_path, baseline, comparison).parent)
    assert len(page.table_after("channel")) == 1 + 20
    # the 5 changes not listed hold 10 + 9 + 8 + 7 + 6 entries
    assert "… and 40 more channel entries in other changes of reason." in page.paragraphs
    assert len(page.table_after("quota day")) == 1 + 60
    more = len(comparison.day_changes()) - 60
    assert f"… and {more} more days with another number of sends." in page.paragraphs


def test_nothing_changed_is_said(tmp_path: Path) -> None:
    page = read(
        write_report(tmp_path, sample(), Comparison(sample(), sample(), SendChanges())).parent
    )
    assert "No channel entry has another reason under the variant." in page.paragraphs
    assert "Every day has as many sends under the variant as in the baseline." in page.paragraphs


def test_round_two_rules_are_in_words(tmp_path: Path) -> None:
    rules = Rules(
        name="round two",
        client_changes={"*": {"max_defer_days": 5}, "acme": {"lead_daily_limit": None}},
        type_changes={ResourceType.LINKEDIN_SEAT: {"weekly_limit": 30}},
        resource_changes={"mail.acme.io": {"warmup": {"every_days": 2}, "active": False}},
        pools=(Pool(client_id="acme", channel=Channel.EMAIL, pool_id="acme-mail", daily_limit=40),),
    )
    variant = replace(sample(), rules=rules.describe())
    page = read(
        write_report(tmp_path, sample(), Comparison(sample(), variant, SendChanges())).parent
    )
    rows = {row[0]: row[2] for row in page.table_after("rule")}
    assert rows["client fields"] == "every client: max_defer_days 5; acme: lead_daily_limit none"
    assert rows["resource fields by resource type"] == "linkedin_seat: weekly_limit 30"
    assert rows["resource fields by resource"] == (
        "mail.acme.io: warmup {every_days 2}, active false"
    )
    assert rows["pools added or replaced"] == "acme / email / acme-mail: daily 40, weekly none"


def test_a_replay_of_no_entries_has_no_reason_to_count(tmp_path: Path) -> None:
    page = read(write_report(tmp_path, with_reasons(sample())).parent)
    assert "No channel entry to count." in page.paragraphs


def test_send_windows_holidays_and_pacing_rules_are_in_words(tmp_path: Path) -> None:
    rules = Rules(
        name="quiet and paced",
        client_changes={
            "*": {"holidays": "US", "blackout_dates": ["2026-12-24", "2026-12-31"]},
            "acme": {
                "send_windows": {
                    "email": {"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}
                },
                "pacing": {"email": {"gap_seconds": 300}},
            },
        },
    )
    variant = replace(sample(), rules=rules.describe())
    page = read(
        write_report(tmp_path, sample(), Comparison(sample(), variant, SendChanges())).parent
    )
    rows = {row[0]: row[2] for row in page.table_after("rule")}
    assert rows["client fields"] == (
        "every client: holidays US, blackout_dates [2026-12-24, 2026-12-31]; "
        "acme: send_windows {email {days [0, 1, 2, 3, 4], start 09:00, end 17:00}}, "
        "pacing {email {gap_seconds 300}}"
    )


def before_feedback() -> ReplaySummary:
    """A summary as made before feedback: four statuses, no send-events, no figures of them."""

    def four(counts: Mapping[str, int]) -> dict[str, int]:
        return {k: v for k, v in counts.items() if k != "suppressed"}

    summary = sample()
    return replace(
        summary,
        statuses=four(summary.statuses),
        by_tier=tuple(replace(t, statuses=four(t.statuses)) for t in summary.by_tier),
    )


def test_a_summary_made_before_feedback_counts_no_suppressed_entry(tmp_path: Path) -> None:
    old = before_feedback()
    comparison = Comparison(old, replace(old, rules={**old.rules, "name": "v"}), SendChanges())
    page = read(write_report(tmp_path, old, comparison).parent)
    assert page.table_after("leads decided")[1] == ["3", "2", "3", "1", "0", "4", "0", "4"]
    assert [WORDS["suppressed"], "0", "0", "+0"] in page.table_after("status")
    assert any("This replay was given no send-events" in p for p in page.paragraphs)
    assert "Feedback: baseline and variant" not in page.headings
    assert json.loads((tmp_path / "summary.json").read_text())["feedback"]["send_events"] == 0
