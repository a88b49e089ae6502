"""The replay report: summary.json and compare.json as written, and index.html read
as HTML (never rendered): plotly embedded for offline use, each chart named and
fed from the summary, the tables' cells."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from allocator.replay.report import write_report
from allocator.replay.rules import Rules
from allocator.replay.summary import (
    CapacityNeed,
    Comparison,
    DayCount,
    EntryCount,
    ReplaySummary,
    ResourceUse,
    SendChanges,
    SendTimeCount,
    TierCounts,
)

CHART_TITLES = [
    "Channel sends per day, by status (day: the quota day, or the day asked for)",
    "Resource utilisation against its daily limit (%)",
    "Share of channel entries deferred and exhausted, by tier",
    "Send times by weekday and local hour",
]


def statuses(allocated: int, deferred: int, exhausted: int, no_resource: int) -> dict[str, int]:
    return {
        "allocated": allocated,
        "deferred": deferred,
        "exhausted": exhausted,
        "no_resource": no_resource,
    }


def sample(name: str = "baseline", spread: float = 0.5) -> ReplaySummary:
    """Three leads of acme: two hot (email and linkedin each), one cold (email)."""
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
    )


class Page(HTMLParser):
    """What a reader of the page gets: scripts, headings, paragraphs, tables, charts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.headings: list[str] = []
        self.paragraphs: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.chart_divs = 0
        self.tags: list[str] = []
        self._open: list[str] = []
        self._text: list[str] = []
        self._attrs: dict[str, str | None] = {}
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._open.append(tag)
        if tag in ("script", "h1", "h2", "h3", "p", "th", "td"):
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
        if self._open and self._open[-1] == tag:
            self._open.pop()
        text = "".join(self._text)
        if tag == "script":
            self.scripts.append((self._attrs, text))
        elif tag in ("h1", "h2", "h3"):
            self.headings.append(text)
        elif tag == "p":
            self.paragraphs.append(text)
        elif tag in ("th", "td"):
            self.tables[-1][-1].append(text)

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
    assert written["by_tier"]["hot"] == {
        "leads": 2,
        "channel_entries": 4,
        **statuses(2, 1, 0, 1),
        "deferred_share": 0.25,
        "exhausted_share": 0.0,
    }
    assert written["resources"][1]["daily_limit"] is None


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

    # one subplot per channel with sends, in channel order; one trace per status
    traces, layout = per_day
    assert [a["text"] for a in layout["annotations"]] == ["email", "linkedin"]
    allocated_email = next(t for t in traces if t["name"] == "allocated" and t["xaxis"] == "x")
    assert (allocated_email["x"], allocated_email["y"]) == (["2026-11-27"], [3])

    # the unlimited mail vendor has no utilisation to show
    traces, _ = utilisation
    assert [(t["name"], t["x"], t["y"]) for t in traces] == [
        ("mean per day", ["acme/d1"], [75.0]),
        ("peak day", ["acme/d1"], [75.0]),
    ]

    traces, _ = tiers
    assert [(t["name"], t["x"], t["y"]) for t in traces] == [
        ("deferred", ["hot", "cold"], [25.0, 0.0]),
        ("exhausted", ["hot", "cold"], [0.0, 0.0]),
    ]

    (heatmap,), _ = send_times
    assert heatmap["y"] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert heatmap["z"][4][9] == 2 and heatmap["z"][0][10] == 1
    assert sum(map(sum, heatmap["z"])) == 3


def test_the_tables_show_totals_and_an_unlimited_capacity(tmp_path: Path) -> None:
    page = read(write_report(tmp_path, sample()).parent)
    assert page.headings[0] == "Allocator replay report"
    assert "Rules: baseline" in page.paragraphs
    overview, capacity = page.tables
    assert overview == [
        ["leads", "invalid records", "allocated", "deferred", "exhausted", "no_resource"],
        ["3", "2", "3", "1", "0", "4"],
    ]
    assert capacity == [
        ["client_id", "channel", "peak_day", "peak_demand", "daily_capacity", "shortfall"],
        ["acme", "direct_mail", "2026-11-27", "1", "unlimited", "0"],
        ["acme", "linkedin", "2026-11-27", "1", "0", "1"],
    ]


def test_a_rules_name_is_text_not_markup(tmp_path: Path) -> None:
    page = read(write_report(tmp_path, sample(name="<b>bold</b> & co")).parent)
    assert "Rules: <b>bold</b> & co" in page.paragraphs
    assert "b" not in page.tags


def test_a_comparison_writes_compare_json_and_its_section(tmp_path: Path) -> None:
    baseline = sample()
    variant = sample(name="double limits", spread=0.25)
    changes = SendChanges(moved_in_time=5, on_another_resource=1, newly_served=2)
    comparison = Comparison(baseline, variant, changes)
    page = read(write_report(tmp_path, baseline, comparison).parent)

    written = json.loads((tmp_path / "compare.json").read_text())
    assert written == comparison.to_json()
    assert written["variant"]["name"] == "double limits"
    assert written["sends_no_longer_served"] == 0
    assert written["usage_balance_spread"] == {"baseline": 0.5, "variant": 0.25}

    assert "Baseline vs double limits" in page.headings
    statuses_table, moves = page.tables[2:4]
    assert statuses_table[0] == ["status", "baseline", "variant", "change"]
    assert statuses_table[1] == ["allocated", "3", "3", "0"]
    assert moves == [
        [
            "sends_moved_in_time",
            "sends_on_another_resource",
            "sends_newly_served",
            "sends_no_longer_served",
        ],
        ["5", "1", "2", "0"],
    ]
    assert any("baseline 0.5, variant 0.25" in p for p in page.paragraphs)
