"""The replay report: summary.json (compare.json) and an HTML page of plotly charts.

The page embeds plotly.js, so it opens offline.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from allocator.channels import (
    ALLOCATED,
    DEFERRED,
    EXHAUSTED,
    NO_RESOURCE,
    REPORTED_STATUSES,
    Channel,
)
from allocator.replay.summary import Comparison, ReplaySummary

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
COLOURS = {
    ALLOCATED: "#2b8a3e",
    DEFERRED: "#f08c00",
    EXHAUSTED: "#c92a2a",
    NO_RESOURCE: "#868e96",
}


def per_day_figure(summary: ReplaySummary) -> go.Figure:
    channels = [c.value for c in Channel if any(r.channel == c.value for r in summary.per_day)]
    fig = make_subplots(
        rows=max(len(channels), 1),
        cols=1,
        shared_xaxes=True,
        subplot_titles=channels or ["no sends"],
        vertical_spacing=0.05,
    )
    for row, channel in enumerate(channels, start=1):
        for status in REPORTED_STATUSES:
            points = [r for r in summary.per_day if r.channel == channel and r.status == status]
            fig.add_trace(
                go.Bar(
                    x=[p.day for p in points],
                    y=[p.count for p in points],
                    name=status,
                    marker_color=COLOURS[status],
                    legendgroup=status,
                    showlegend=row == 1,
                ),
                row=row,
                col=1,
            )
    fig.update_layout(
        barmode="stack",
        height=220 * max(len(channels), 1) + 100,
        title="Channel sends per day, by status (day: the quota day, or the day asked for)",
    )
    return fig


def utilisation_figure(summary: ReplaySummary) -> go.Figure:
    labels: list[str] = []
    means: list[float] = []
    peaks: list[float] = []
    for r in summary.resources:
        if r.mean_utilisation is None or r.peak_utilisation is None:
            continue  # no daily limit: nothing to measure against
        labels.append(f"{r.client_id}/{r.resource_id}")
        means.append(100 * r.mean_utilisation)
        peaks.append(100 * r.peak_utilisation)
    fig = go.Figure(
        [
            go.Bar(name="mean per day", x=labels, y=means),
            go.Bar(name="peak day", x=labels, y=peaks),
        ]
    )
    fig.add_hline(y=100, line_dash="dash", annotation_text="daily limit")
    fig.update_layout(
        barmode="group",
        title="Resource utilisation against its daily limit (%)",
        yaxis_title="% of limit",
        height=450,
    )
    return fig


def tier_figure(summary: ReplaySummary) -> go.Figure:
    tiers = summary.tiers_best_first()
    order = [t.tier for t in tiers]
    fig = go.Figure(
        [
            go.Bar(
                name=DEFERRED,
                x=order,
                marker_color=COLOURS[DEFERRED],
                y=[100 * t.deferred_share for t in tiers],
            ),
            go.Bar(
                name=EXHAUSTED,
                x=order,
                marker_color=COLOURS[EXHAUSTED],
                y=[100 * t.exhausted_share for t in tiers],
            ),
        ]
    )
    fig.update_layout(
        barmode="group",
        height=400,
        yaxis_title="% of channel entries",
        title="Share of channel entries deferred and exhausted, by tier",
    )
    return fig


def send_time_figure(summary: ReplaySummary) -> go.Figure:
    grid = [[0] * 24 for _ in range(7)]
    for point in summary.send_times:
        grid[point.weekday][point.hour] = point.count
    fig = go.Figure(
        go.Heatmap(z=grid, x=[f"{h:02d}" for h in range(24)], y=WEEKDAYS, colorscale="Blues")
    )
    fig.update_layout(
        title="Send times by weekday and local hour",
        height=380,
        yaxis_autorange="reversed",
        xaxis_title="local hour",
    )
    return fig


def _cell(value: Any, column: str) -> str:
    if value is None:  # a capacity or limit of None means no daily cap
        return "unlimited" if "capacity" in column or "limit" in column else ""
    return html.escape(str(value))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c), c)}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _comparison_html(comparison: Comparison) -> str:
    base, variant = comparison.baseline, comparison.variant
    status_rows: list[dict[str, Any]] = [
        {
            "status": s,
            "baseline": base.statuses[s],
            "variant": variant.statuses[s],
            "change": variant.statuses[s] - base.statuses[s],
        }
        for s in REPORTED_STATUSES
    ]
    capacity: dict[tuple[str, str], dict[str, Any]] = {}
    for side, summary in (("baseline", base), ("variant", variant)):
        for row in summary.capacity_needed:
            entry = capacity.setdefault(
                (row.client_id, row.channel),
                {"client_id": row.client_id, "channel": row.channel},
            )
            entry[f"{side} peak demand"] = row.peak_demand
            entry[f"{side} capacity"] = row.daily_capacity
            entry[f"{side} shortfall"] = row.shortfall
    moves = comparison.changes.to_json()
    return (
        f"<h2>Baseline vs {html.escape(variant.rules_name)}</h2>"
        f"<pre>{html.escape(json.dumps(dict(variant.rules), indent=1))}</pre>"
        + _table(status_rows, ["status", "baseline", "variant", "change"])
        + "<h3>Sends that change</h3>"
        + _table([moves], list(moves))
        + "<h3>Capacity needed to serve every lead on the day it asked for</h3>"
        + _table(
            list(capacity.values()),
            [
                "client_id",
                "channel",
                "baseline peak demand",
                "baseline capacity",
                "baseline shortfall",
                "variant capacity",
                "variant shortfall",
            ],
        )
        + f"<p>Usage balance (mean max-min spread across equal-limit resources per day): "
        f"baseline {base.usage_balance_spread}, variant {variant.usage_balance_spread}</p>"
    )


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def write_report(
    directory: str | Path, summary: ReplaySummary, comparison: Comparison | None = None
) -> Path:
    """summary.json, compare.json with a comparison, and index.html; the page's path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(_json(summary.to_json()))
    if comparison is not None:
        (out / "compare.json").write_text(_json(comparison.to_json()))
    figures = [
        per_day_figure(summary),
        utilisation_figure(summary),
        tier_figure(summary),
        send_time_figure(summary),
    ]
    charts = "".join(
        f'<section class="chart">{fig.to_html(full_html=False, include_plotlyjs=(i == 0))}'
        "</section>"
        for i, fig in enumerate(figures)
    )
    overview = _table(
        [{"leads": summary.leads, "invalid records": summary.invalid_records, **summary.statuses}],
        ["leads", "invalid records", *REPORTED_STATUSES],
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Allocator replay report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head>
<body><h1>Allocator replay report</h1>
<p>Rules: {html.escape(summary.rules_name)}</p>
{overview}
<h2>Capacity needed to serve every lead on the day it asked for</h2>
{
        _table(
            [asdict(c) for c in summary.capacity_needed],
            ["client_id", "channel", "peak_day", "peak_demand", "daily_capacity", "shortfall"],
        )
    }
{charts}
{_comparison_html(comparison) if comparison else ""}
</body></html>
"""
    (out / "index.html").write_text(page, encoding="utf-8")
    return out / "index.html"
