"""The replay report: summary.json (compare.json) and an HTML page of plotly charts.

The page embeds plotly.js once, so it opens offline. It says what it covers
(the inputs, the span of the leads, what was skipped and why), names every
status in words with one colour everywhere, has a client menu on the charts
per client, and draws a comparison's two sides next to each other.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from allocator.channels import (
    ALLOCATED,
    DEFERRED,
    EXHAUSTED,
    NO_RESOURCE,
    REPORTED_STATUSES,
    SUPPRESSED,
    Channel,
)
from allocator.models import KINDS
from allocator.reasons import Why
from allocator.replay.summary import (
    FEEDBACK_LABELS,
    NO_REASON,
    REFUND_KINDS,
    Comparison,
    DayCount,
    Inputs,
    ReplaySummary,
    ResourceUse,
)

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
COLOURS = {
    ALLOCATED: "#2b8a3e",
    DEFERRED: "#f08c00",
    EXHAUSTED: "#c92a2a",
    NO_RESOURCE: "#868e96",
    SUPPRESSED: "#1c7ed6",
}
# A status in words, as legends and tables name it. "deferred" is what
# channels.reported_status says and the worker's metrics count: allocated on a
# later day than asked, a subset of what an allocation record calls allocated.
STATUS_LABELS = {
    ALLOCATED: "allocated on the day asked for",
    DEFERRED: "deferred: allocated on a later day",
    EXHAUSTED: "exhausted",
    NO_RESOURCE: "no resource",
    SUPPRESSED: "suppressed (the lead stopped)",
}
STATUS_MEANINGS = {
    ALLOCATED: "a resource had room on the day the send asked for.",
    DEFERRED: "allocated too, but on a later day than the send asked for (within the "
    "client's max_defer_days). The allocation records call these allocated; like the "
    "worker's metrics, this report counts them apart, and the demo's table shows them as "
    "“of which deferred”.",
    EXHAUSTED: "every active resource of the channel was full on every day up to the "
    "client's max_defer_days.",
    NO_RESOURCE: "the client has no active resource for the channel (or is not among the "
    "clients given).",
    SUPPRESSED: "the lead replied, booked a meeting or unsubscribed (send-events) within "
    "its client's suppression_days: nothing was reserved for it.",
}
SIDE_COLOURS = {"baseline": "#495057", "variant": "#7048e8"}
# The send-time chart's channels, told apart from the status colours.
CHANNEL_COLOURS = {
    "email": "#1c7ed6",
    "linkedin": "#0c8599",
    "voice": "#ae3ec9",
    "sms": "#d6336c",
    "direct_mail": "#795548",
}
# The send-time chart counts sends per this many minutes of the local day.
TIME_BIN_MINUTES = 10
CHANGE_LABELS = {
    "sends_moved_in_time": "sends moved to another time",
    "sends_on_another_resource": "sends on another resource, same time",
    "sends_newly_served": "sends newly served",
    "sends_no_longer_served": "sends no longer served",
    "entries_with_another_reason": "channel entries with another reason",
}
ALL_CLIENTS = "all clients"
# Why an entry is not at its first slot (CONTRACT.md section 11), in words.
REASON_MEANINGS = {
    NO_REASON: "allocated at the slot its pattern or the default schedule gave.",
    Why.DEFERRED_FULL: "deferred: the channel's resources were full on the day.",
    Why.DEFERRED_WARMUP: "deferred: the resources were at their warm-up cap on the day.",
    Why.DEFERRED_WEEKLY: "deferred: the resources were at their weekly limit (the day and "
    "the 6 before it).",
    Why.DEFERRED_POOL: "deferred: the resources' pool was full (day or week).",
    Why.DEFERRED_HEALTH: "deferred: the resources were cooling or paused.",
    Why.DEFERRED_LEAD_LIMIT: "deferred: the lead had its client's daily send limit that day.",
    Why.DEFERRED_DOMAIN_LIMIT: "deferred: the recipient's mail domain had its client's daily "
    "limit that day.",
    Why.MOVED_WINDOW: "moved to the next instant inside the channel's send window.",
    Why.MOVED_HOLIDAY: "moved past a public holiday or a blackout date.",
    Why.EXHAUSTED: "no resource had room on any day up to the client's max_defer_days.",
    Why.NO_RESOURCE: "the client has no active resource for the channel.",
    Why.SUPPRESSED: "the lead was stopped (replied, booked a meeting or unsubscribed).",
}
# Rows of the longer comparison tables; the rest are counted in a sentence.
REASON_CHANGES_SHOWN = 20
DAY_CHANGES_SHOWN = 60
# Days of the feedback-over-time table; the rest are counted (summary.json has all).
FEEDBACK_DAYS_SHOWN = 92
# What a send-event of each kind does (CONTRACT.md section 10), in words.
KIND_MEANINGS = {
    "sent": "the send went out; counted toward its resource's bounce rate over 7 days.",
    "failed": "the send did not happen: its count is given back to its usage day (unless "
    "that day has ended).",
    "bounced": "counted toward the resource's bounce rate; above the client's "
    "bounce_rate_limit (with at least 20 sent) the resource cools for cooldown_hours.",
    "complained": "counted toward the resource's complaints; at complaint_limit over 7 days "
    "the resource cools for cooldown_hours.",
    "throttled": "the resource cools until retry_after (default an hour later).",
    "auth_failed": "the resource is paused until it is loaded again with active: true.",
    "replied": "stops the lead: its sends after the event are cancelled and given back, and "
    "its later scored events are suppressed for the client's suppression_days.",
    "meeting_booked": "stops the lead, as replied.",
    "unsubscribed": "stops the lead for good: its later sends cancelled, its later scored "
    "events suppressed.",
}


class Shown(str):
    """A number already written out ("+12", "75%"): a cell right-aligned like a number."""


class Bar(float):
    """A share 0..1: a cell drawing a bar of that length and the share in %."""


Cell = str | int | float


def _reason_words(reason: str) -> str:
    return "none (at its first slot)" if reason == NO_REASON else reason


# --- charts -------------------------------------------------------------------


def _client_menu(fig: go.Figure, views: Sequence[str], owners: Sequence[int]) -> None:
    """A menu over the figure that shows one view's traces (owners[i]: trace i's view)."""
    if len(views) < 2:
        return
    buttons = [
        {
            "label": view if view == ALL_CLIENTS else f"client: {view}",
            "method": "restyle",
            "args": [{"visible": [o == v for o in owners]}],
        }
        for v, view in enumerate(views)
    ]
    fig.update_layout(
        updatemenus=[
            {
                "buttons": buttons,
                "active": 0,
                "direction": "down",
                "showactive": True,
                "x": 1,
                "xanchor": "right",
                "y": 1,
                "yanchor": "bottom",
                "pad": {"b": 30},
            }
        ]
    )


def _views(summary: ReplaySummary) -> list[tuple[str, list[DayCount]]]:
    """(view, its days): every client together, then each client alone."""
    per_client: dict[str, list[DayCount]] = defaultdict(list)
    for d in summary.per_client_day:
        per_client[d.client_id].append(DayCount(d.day, d.channel, d.status, d.count))
    return [(ALL_CLIENTS, list(summary.per_day))] + [
        (client, per_client[client]) for client in sorted(per_client)
    ]


def per_day_figure(summary: ReplaySummary) -> go.Figure:
    views = _views(summary)
    channels = [c.value for c in Channel if any(r.channel == c.value for r in summary.per_day)]
    fig = make_subplots(
        rows=max(len(channels), 1),
        cols=1,
        shared_xaxes=True,
        subplot_titles=channels or ["no channel entries"],
        vertical_spacing=0.06,
    )
    owners: list[int] = []
    for v, (_, days) in enumerate(views):
        # One legend entry per status, always: plotly leaves a trace without
        # points out of the legend, which hid the grey no-resource bars' key.
        for status in REPORTED_STATUSES:
            fig.add_trace(
                go.Bar(
                    x=[None],
                    y=[None],
                    name=STATUS_LABELS[status],
                    marker_color=COLOURS[status],
                    legendgroup=f"{v}:{status}",
                    visible=v == 0,
                    hoverinfo="skip",
                ),
                row=1,
                col=1,
            )
            owners.append(v)
        for row, channel in enumerate(channels, start=1):
            for status in REPORTED_STATUSES:
                points = [d for d in days if d.channel == channel and d.status == status]
                if not points:
                    continue
                fig.add_trace(
                    go.Bar(
                        x=[p.day for p in points],
                        y=[p.count for p in points],
                        name=STATUS_LABELS[status],
                        marker_color=COLOURS[status],
                        legendgroup=f"{v}:{status}",
                        showlegend=False,
                        visible=v == 0,
                        hovertemplate=f"{channel}, %{{x}}: %{{y}} {STATUS_LABELS[status]}"
                        "<extra></extra>",
                    ),
                    row=row,
                    col=1,
                )
                owners.append(v)
    for row in range(1, len(channels) + 1):
        fig.update_yaxes(title_text="channel entries", row=row, col=1)
    # Said, not guessed: plotly types an axis from its first trace, here the
    # legend's pointless [None], and would then draw the first row's days nowhere.
    fig.update_xaxes(type="date")
    _client_menu(fig, [view for view, _ in views], owners)
    fig.update_layout(
        barmode="stack",
        height=220 * max(len(channels), 1) + 160,
        title="Channel entries per day, by status (day: the send's quota day, else the day "
        "it asked for)",
        margin={"t": 110},
    )
    return fig


def _resource_label(r: ResourceUse) -> str:
    return f"{r.client_id} / {r.resource_id}"


def utilisation_figure(summary: ReplaySummary) -> go.Figure:
    limited = [r for r in summary.resources if r.daily_limit]  # no limit: nothing to measure
    views = [(ALL_CLIENTS, limited)] + [
        (client, [r for r in limited if r.client_id == client])
        for client in sorted({r.client_id for r in limited})
    ]
    fig = go.Figure()
    owners: list[int] = []
    for v, (_, rows) in enumerate(views):
        shares = (
            ("mean day", [r.mean_utilisation or 0.0 for r in rows]),
            ("busiest day", [r.peak_utilisation or 0.0 for r in rows]),
        )
        for name, share in shares:
            fig.add_trace(
                go.Bar(
                    name=name,
                    x=[_resource_label(r) for r in rows],
                    y=[100 * x for x in share],
                    customdata=[[r.daily_limit, r.channel] for r in rows],
                    marker_color="#74c0fc" if name == "mean day" else "#1864ab",
                    legendgroup=f"{v}:{name}",
                    visible=v == 0,
                    hovertemplate=f"%{{x}} (%{{customdata[1]}}): {name} %{{y:.0f}}% "
                    "of its daily limit of %{customdata[0]} sends<extra></extra>",
                )
            )
            owners.append(v)
    fig.add_hline(y=100, line_dash="dash", annotation_text="daily limit")
    _client_menu(fig, [view for view, _ in views], owners)
    fig.update_layout(
        barmode="group",
        title="Resource utilisation against its daily limit (%)",
        yaxis_title="% of the resource's daily limit",
        height=480,
        margin={"t": 110},
    )
    return fig


def tier_figure(summary: ReplaySummary) -> go.Figure:
    tiers = summary.tiers_best_first()
    order = [t.tier for t in tiers]
    fig = go.Figure(
        [
            go.Bar(
                name=STATUS_LABELS[status],
                x=order,
                marker_color=COLOURS[status],
                y=[100 * share for share in shares],
                hovertemplate="%{x}: %{y:.1f}% of the tier's channel entries<extra></extra>",
            )
            for status, shares in (
                (DEFERRED, [t.deferred_share for t in tiers]),
                (EXHAUSTED, [t.exhausted_share for t in tiers]),
            )
        ]
    )
    fig.update_layout(
        barmode="group",
        height=400,
        xaxis_title="tier",
        yaxis_title="% of the tier's channel entries",
        title="Share of channel entries deferred and exhausted, by tier",
    )
    return fig


def _clock(minute: int) -> str:
    """A minute of the day (0..1440) as hh:mm."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _hours_sent(summary: ReplaySummary) -> tuple[int, int]:
    """The first and last local hour with a send; the whole day without sends."""
    hours = {m.hour for m in summary.send_minutes} | {t.hour for t in summary.send_times}
    return (min(hours), max(hours)) if hours else (0, 23)


def send_time_figure(summary: ReplaySummary) -> go.Figure:
    """Above: sends per TIME_BIN_MINUTES of the local day, stacked by channel, so
    that pacing's spread within an hour shows. Below: sends by weekday and local
    hour. Both on one axis of minutes of the day."""
    bins: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for m in summary.send_minutes:
        start = (m.hour * 60 + m.minute) // TIME_BIN_MINUTES * TIME_BIN_MINUTES
        bins[m.channel][start] += m.count
    channels = [c.value for c in Channel if c.value in bins]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.6, 0.4],
        vertical_spacing=0.14,
        subplot_titles=[
            f"sends per {TIME_BIN_MINUTES} minutes of local time, by channel",
            "sends by weekday and local hour",
        ],
    )
    half = TIME_BIN_MINUTES / 2
    for channel in channels:
        starts = sorted(bins[channel])
        fig.add_trace(
            go.Bar(
                name=channel,
                x=[start + half for start in starts],
                y=[bins[channel][start] for start in starts],
                width=TIME_BIN_MINUTES,
                marker_color=CHANNEL_COLOURS.get(channel),
                customdata=[
                    f"{_clock(start)}-{_clock(start + TIME_BIN_MINUTES)}" for start in starts
                ],
                hovertemplate=f"{channel}, %{{customdata}} local: %{{y}} sends<extra></extra>",
            ),
            row=1,
            col=1,
        )
    grid = [[0] * 24 for _ in range(7)]
    for point in summary.send_times:
        grid[point.weekday][point.hour] = point.count
    fig.add_trace(
        go.Heatmap(
            z=grid,
            x=[60 * h + 30 for h in range(24)],  # each hour's column centred on it
            y=WEEKDAYS,
            text=[
                [f"{day} {_clock(60 * h)}-{_clock(60 * h + 60)}" for h in range(24)]
                for day in WEEKDAYS
            ],
            colorscale="Blues",
            colorbar={"title": {"text": "sends"}, "len": 0.36, "y": 0, "yanchor": "bottom"},
            hovertemplate="%{text} local: %{z} sends<extra></extra>",
        ),
        row=2,
        col=1,
    )
    first, last = _hours_sent(summary)
    span = [max(0, 60 * first - 60), min(24 * 60, 60 * last + 120)]  # an hour either side
    step = 60 if span[1] - span[0] <= 12 * 60 else 120
    ticks = list(range(span[0], span[1] + 1, step))
    fig.update_xaxes(
        range=span, tickvals=ticks, ticktext=[_clock(m) for m in ticks], showticklabels=True
    )
    fig.update_xaxes(
        title_text="local time of the send (the lead's zone, else the client's)", row=2, col=1
    )
    fig.update_yaxes(title_text="sends", row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=2, col=1)
    fig.update_layout(
        title="Send times: local time of day by channel, and by weekday",
        barmode="stack",
        bargap=0,
        height=640,
        margin={"t": 110},
        legend={"title": {"text": "channel"}, "traceorder": "normal", "y": 1, "yanchor": "top"},
    )
    return fig


def _sides(comparison: Comparison) -> list[tuple[str, str, ReplaySummary]]:
    """(side, its name in a legend, its summary)."""

    def name(side: str, summary: ReplaySummary) -> str:
        return side if summary.rules_name == side else f"{side} ({summary.rules_name})"

    return [
        ("baseline", name("baseline", comparison.baseline), comparison.baseline),
        ("variant", name("variant", comparison.variant), comparison.variant),
    ]


def compare_status_figure(comparison: Comparison) -> go.Figure:
    labels = [STATUS_LABELS[s] for s in REPORTED_STATUSES]
    fig = go.Figure(
        [
            go.Bar(
                name=name,
                x=labels,
                y=[summary.statuses.get(s, 0) for s in REPORTED_STATUSES],
                marker_color=SIDE_COLOURS[side],
                text=[f"{summary.statuses.get(s, 0):,}" for s in REPORTED_STATUSES],
                textposition="outside",
                hovertemplate=f"{name}: %{{y}} %{{x}}<extra></extra>",
            )
            for side, name, summary in _sides(comparison)
        ]
    )
    fig.update_layout(
        barmode="group",
        height=420,
        title="Channel entries by status: baseline and variant side by side",
        yaxis_title="channel entries",
    )
    return fig


def compare_shortfall_figure(comparison: Comparison) -> go.Figure:
    keys = sorted(
        {
            (c.client_id, c.channel)
            for _, _, summary in _sides(comparison)
            for c in summary.capacity_needed
        }
    )
    traces = []
    for side, name, summary in _sides(comparison):
        shortfall = {(c.client_id, c.channel): c.shortfall for c in summary.capacity_needed}
        traces.append(
            go.Bar(
                name=name,
                x=[f"{client} / {channel}" for client, channel in keys],
                y=[shortfall.get(key, 0) for key in keys],
                marker_color=SIDE_COLOURS[side],
                hovertemplate=f"{name}: %{{x}} short of %{{y}} sends on its busiest day"
                "<extra></extra>",
            )
        )
    fig = go.Figure(traces)
    fig.update_layout(
        barmode="group",
        height=440,
        title="Capacity shortfall on the busiest day, by client and channel: baseline and variant",
        yaxis_title="sends a day beyond capacity",
    )
    return fig


def compare_balance_figure(comparison: Comparison) -> go.Figure:
    sides = _sides(comparison)
    fig = go.Figure(
        go.Bar(
            x=[name for _, name, _ in sides],
            y=[summary.usage_balance_spread for _, _, summary in sides],
            marker_color=[SIDE_COLOURS[side] for side, _, _ in sides],
            text=[f"{summary.usage_balance_spread:g} sends" for _, _, summary in sides],
            textposition="outside",
            hovertemplate="%{x}: a spread of %{y} sends a day<extra></extra>",
        )
    )
    fig.update_layout(
        height=360,
        title="Usage balance: mean daily spread of sends across equal-limit resources (0 = even)",
        yaxis_title="spread (sends a day)",
    )
    return fig


# --- HTML ---------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"


def _table(header: Sequence[str], rows: Iterable[Sequence[Cell]], css: str = "") -> str:
    """A table with its header in words; numbers right-aligned, text left-aligned."""

    def cell(value: Cell) -> str:
        if isinstance(value, Bar):
            width = round(160 * value)
            return (
                f'<td class="num"><span class="bar" style="width:{width}px"></span>'
                f"{100 * value:.1f}%</td>"
            )
        if isinstance(value, Shown):
            return f'<td class="num">{html.escape(value)}</td>'
        if isinstance(value, str):
            return f"<td>{html.escape(value)}</td>"
        return f'<td class="num">{_number(value)}</td>'

    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    klass = f' class="{css}"' if css else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _e(text: object) -> str:
    return html.escape(str(text))


def _legend() -> str:
    """Every status: its colour, its name in words, what it means."""
    items = "".join(
        f'<li><span class="swatch" style="background:{COLOURS[s]}"></span>'
        f"<b>{_e(STATUS_LABELS[s])}</b> (<code>{_e(s)}</code>): {_e(STATUS_MEANINGS[s])}</li>"
        for s in REPORTED_STATUSES
    )
    return f'<ul class="legend">{items}</ul>'


def _overview_html(summary: ReplaySummary) -> str:
    n = summary.status_count
    sentence = (
        f"{summary.leads:,} leads decided, {summary.invalid_records:,} input records skipped; "
        f"{summary.channel_entries:,} channel entries: {summary.allocated_any_day:,} allocated "
        f"({n(ALLOCATED):,} on the day asked for and {n(DEFERRED):,} deferred to a later day), "
        f"{n(EXHAUSTED):,} exhausted, {n(NO_RESOURCE):,} with no resource"
        + (f", {n(SUPPRESSED):,} suppressed (the lead had stopped)." if n(SUPPRESSED) else ".")
    )
    table = _table(
        [
            "leads decided",
            "input records skipped",
            *(STATUS_LABELS[st] for st in REPORTED_STATUSES),
            "allocated on any day (on the day + deferred)",
        ],
        [
            [
                summary.leads,
                summary.invalid_records,
                *(n(st) for st in REPORTED_STATUSES),
                summary.allocated_any_day,
            ]
        ],
    )
    balance = (
        "<p>Usage balance: across each client's resources of one channel with equal daily "
        "limits, the busiest resource's sends minus the least used one's, averaged over "
        f"clients, channels and days, is {summary.usage_balance_spread:g} sends "
        "(0 means sends spread perfectly evenly).</p>"
    )
    return f"<p>{_e(sentence)}</p>{table}{_legend()}{balance}"


def _when(iso: str | None) -> str:
    return "-" if iso is None else iso.replace("T", " ")


def _inputs_html(inputs: Inputs, invalid_by_code: Mapping[str, int]) -> str:
    if inputs.first_scored_at is not None:
        read = f"{inputs.leads_read:,} valid leads and {inputs.patterns_read:,} patterns"
        if inputs.send_events_read:
            read = (
                f"{inputs.leads_read:,} valid leads, {inputs.patterns_read:,} patterns and "
                f"{inputs.send_events_read:,} send-events"
            )
        span = (
            f"<p>Leads scored from {_e(_when(inputs.first_scored_at))} to "
            f"{_e(_when(inputs.last_scored_at))}: {read} read.</p>"
        )
    else:
        sends = f", {inputs.send_events_read:,} send-events" if inputs.send_events_read else ""
        span = f"<p>No valid lead was read ({inputs.patterns_read:,} patterns{sends} read).</p>"
    sources = (
        _table(
            ["input", "read from", "name", "records read", "records skipped", "window"],
            [
                [s.kind, s.origin, s.name, s.records, s.skipped, s.window or "-"]
                for s in inputs.sources
            ],
        )
        if inputs.sources
        else "<p>This summary does not record where its inputs were read.</p>"
    )
    if not invalid_by_code:
        return span + sources + "<p>No input record was skipped.</p>"
    by_code = _table(
        ["reason (error code)", "records skipped"],
        [[code, n] for code, n in invalid_by_code.items()],
    )
    listed = _table(
        ["source", "where", "reason (error code)", "what is wrong"],
        [[r.source, r.where, r.code, r.message] for r in inputs.skipped],
        css="skipped",
    )
    more = inputs.skipped_total - len(inputs.skipped)
    rest = f"<p>… and {more:,} more skipped records, counted above.</p>" if more > 0 else ""
    return (
        span
        + sources
        + "<h3>Skipped input records, by reason</h3>"
        + by_code
        + (listed + rest if inputs.skipped else "")
    )


def _clients_html(summary: ReplaySummary) -> str:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(REPORTED_STATUSES, 0))
    for d in summary.per_client_day:
        totals[d.client_id][d.status] += d.count
    busiest: dict[str, float] = {}
    for r in summary.resources:
        if r.peak_utilisation is not None:
            busiest[r.client_id] = max(busiest.get(r.client_id, 0.0), r.peak_utilisation)
    rows: list[list[Cell]] = [
        [
            client,
            summary.leads_by_client[client],
            *(totals[client][s] for s in REPORTED_STATUSES),
            Shown(f"{100 * busiest[client]:.0f}%") if client in busiest else "-",
        ]
        for client in summary.clients()
    ]
    table = _table(
        [
            "client",
            "leads",
            *(STATUS_LABELS[s] for s in REPORTED_STATUSES),
            "busiest resource-day (% of its daily limit)",
        ],
        rows,
    )
    unknown = (
        "<p>Clients not among the clients given, decided with no resources: "
        f"{_e(', '.join(summary.unknown_clients))}.</p>"
        if summary.unknown_clients
        else ""
    )
    menu = (
        "<p>The two charts below show every client together; their menu (top right) "
        "shows one client's channel entries and resources.</p>"
        if summary.per_client_day
        else ""
    )
    return table + unknown + menu


def _unlimited_note(summary: ReplaySummary) -> str:
    unlimited = sorted(_resource_label(r) for r in summary.resources if not r.daily_limit)
    if not unlimited:
        return ""
    return (
        "<p>Resources without a daily limit are not in the utilisation chart: "
        f"{_e(', '.join(unlimited))}.</p>"
    )


def _capacity_table(summary: ReplaySummary) -> str:
    return _table(
        [
            "client",
            "channel",
            "busiest day asked for",
            "sends asked for that day",
            "daily capacity (sends)",
            "shortfall (sends)",
        ],
        [
            [
                c.client_id,
                c.channel,
                c.peak_day,
                c.peak_demand,
                "unlimited" if c.daily_capacity is None else c.daily_capacity,
                c.shortfall,
            ]
            for c in summary.capacity_needed
        ],
    )


def _word(value: Any) -> str:
    """A value of a rules file as it reads: null is none, an object its fields."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} {_word(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_word(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


EVERY = {"clients": "every client", "resources": "every resource"}


def _rule_value(key: str, value: Any) -> str:
    """A Rules.describe() value in words; empty means the replay's own setup."""
    if key == "patterns":
        return "used" if value else "not used"
    if value is None:
        return "each client's own"
    if key in ("clients", "types", "resources") and isinstance(value, dict):
        changes = [
            f"{EVERY[key] if name == '*' else name}: "
            + ", ".join(f"{f} {_word(v)}" for f, v in fields.items())
            for name, fields in value.items()
        ]
        return "; ".join(changes) or "as given"
    if key == "pools" and isinstance(value, list):
        pools = [
            f"{p['client_id']} / {p['channel']} / {p['pool_id']}: daily "
            f"{_word(p.get('daily_limit'))}, weekly {_word(p.get('weekly_limit'))}"
            for p in value
        ]
        return "; ".join(pools) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "as given"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


RULE_LABELS = {
    "name": "name",
    "patterns": "WHEN/HOW patterns",
    "max_defer_days": "days a send may be deferred",
    "type_limits": "daily limit by resource type",
    "resource_limits": "daily limit of named resources",
    "send_hours": "default send hour by channel",
    "extra_resources": "resources added",
    "clients": "client fields",
    "types": "resource fields by resource type",
    "resources": "resource fields by resource",
    "pools": "pools added or replaced",
}


def _send_times_html(summary: ReplaySummary) -> str:
    """What the send-time chart shows, and its busiest stretch of the day."""
    text = (
        "<p>Send times are local to the send's zone (the lead's, else the client's). The "
        f"upper chart counts sends per {TIME_BIN_MINUTES} minutes of the day, by channel: "
        "a client's pacing spreads the sends of one slot over the minutes after it. The "
        "lower one counts them by weekday and hour.</p>"
    )
    bins: dict[int, int] = defaultdict(int)
    for m in summary.send_minutes:
        bins[(m.hour * 60 + m.minute) // TIME_BIN_MINUTES * TIME_BIN_MINUTES] += m.count
    if not bins:
        return text
    busiest = max(sorted(bins), key=lambda start: bins[start])  # the earliest of equals
    return text + (
        f"<p>The busiest {TIME_BIN_MINUTES} minutes of the local day, "
        f"{_clock(busiest)}-{_clock(busiest + TIME_BIN_MINUTES)}, hold {bins[busiest]:,} of "
        f"the {sum(bins.values()):,} sends (every channel and weekday).</p>"
    )


def _reasons_html(summary: ReplaySummary) -> str:
    """Channel entries by reason: a table with a bar of each one's share, and
    the same by channel."""
    if not summary.reasons:
        return "<p>This summary does not count reasons.</p>"
    total = sum(summary.reasons.values())
    present = [r for r in summary.reasons if summary.reasons[r]]
    if not total:
        return "<p>No channel entry to count.</p>"
    shares = _table(
        ["reason (code)", "what it means", "channel entries", "share of channel entries"],
        [
            [
                _reason_words(r),
                REASON_MEANINGS.get(r, "-"),
                summary.reasons[r],
                Bar(summary.reasons[r] / total),
            ]
            for r in present
        ],
        css="reasons",
    )
    by_channel: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in summary.by_reason:
        by_channel[row.reason][row.channel] += row.count
    channels = [c.value for c in Channel if any(r.channel == c.value for r in summary.by_reason)]
    per_channel = _table(
        ["reason (code)", *channels],
        [[_reason_words(r), *(by_channel[r][c] for c in channels)] for r in present],
    )
    return (
        "<p>Each channel entry says why it is not at the slot its pattern or the default "
        "schedule gave: the first thing that moved or stopped it. Codes not listed "
        "counted no entry.</p>" + shares + per_channel
    )


def _reason_comparison_html(comparison: Comparison) -> str:
    base, variant = comparison.baseline, comparison.variant
    counts = _table(
        ["reason (code)", "baseline", "variant", "change (variant minus baseline)"],
        [
            [
                _reason_words(r),
                base.reason_count(r),
                variant.reason_count(r),
                Shown(f"{variant.reason_count(r) - base.reason_count(r):+,}"),
            ]
            for r in comparison.reasons()
        ],
    )
    moves = comparison.changes.reason_changes
    if moves:
        shown = moves[:REASON_CHANGES_SHOWN]
        how = _table(
            ["channel", "reason in the baseline", "reason under the variant", "channel entries"],
            [
                [m.channel, _reason_words(m.baseline), _reason_words(m.variant), m.count]
                for m in shown
            ],
        )
        rest = sum(m.count for m in moves[REASON_CHANGES_SHOWN:])
        if rest:
            how += f"<p>… and {rest:,} more channel entries in other changes of reason.</p>"
    else:
        how = "<p>No channel entry has another reason under the variant.</p>"
    days = comparison.day_changes()
    if days:
        by_day = _table(
            ["quota day", "channel", "baseline sends", "variant sends", "change"],
            [
                [d.day, d.channel, d.baseline, d.variant, Shown(f"{d.change:+,}")]
                for d in days[:DAY_CHANGES_SHOWN]
            ],
        )
        more = len(days) - DAY_CHANGES_SHOWN
        if more > 0:
            by_day += f"<p>… and {more:,} more days with another number of sends.</p>"
    else:
        by_day = "<p>Every day has as many sends under the variant as in the baseline.</p>"
    return (
        "<h3>Reasons: baseline and variant</h3>"
        + "<p>Channel entries by the reason that moved or stopped them (codes either "
        "side counted).</p>"
        + counts
        + "<h3>How reasons changed</h3>"
        + "<p>Channel entries that both runs decided with another reason, most frequent "
        "first.</p>"
        + how
        + "<h3>Sends per day that change</h3>"
        + "<p>Sends by quota day and channel, deferred ones included, where the variant "
        "sends another number than the baseline.</p>" + by_day
    )


def _feedback_html(summary: ReplaySummary) -> str:
    """What the send-events did: the figures, by kind, the cancellations by
    channel and reason, the health changes by state and one by one, and per day."""
    if not summary.read_send_events:
        return (
            "<p>This replay was given no send-events (<code>--send-events</code> or "
            "<code>--send-events-topic</code>): no send was refunded or cancelled and every "
            "resource stayed healthy.</p>"
        )
    f = summary.feedback
    counts = summary.feedback_counts()
    skipped = counts["send_events_naming_no_reserved_send"]
    sentence = (
        f"{f.send_events:,} send-events applied"
        + (f" ({skipped:,} naming no send the replay reserved were skipped)" if skipped else "")
        + f": {f.refunds:,} sends' counts given back to their day (refunds), "
        f"{f.cancellations:,} reserved sends cancelled, {f.health_changes:,} changes of "
        f"resource health; {counts['suppressed_entries']:,} channel entries suppressed because "
        "their lead had stopped. A refund or a cancellation frees room for later leads; a "
        "cooling or paused resource gets no send until its time (reason deferred_health)."
    )
    figures = _table(
        ["figure", "count"], [[FEEDBACK_LABELS.get(k, k), v] for k, v in counts.items()]
    )
    kinds = _table(
        ["kind", "what it does", "send-events applied", "sends given back"],
        [
            [
                kind,
                KIND_MEANINGS.get(kind, "-"),
                f.by_kind.get(kind, 0),
                f.refunds_by_kind.get(kind, 0) if kind in REFUND_KINDS else "-",
            ]
            for kind in KINDS
            if f.by_kind.get(kind, 0)
        ],
    )
    if f.cancellations_by:
        cancelled = _table(
            ["channel", "reason (the stop's kind)", "sends cancelled"],
            [[c.channel, c.reason, c.count] for c in f.cancellations_by],
        )
    else:
        cancelled = "<p>No reserved send was cancelled.</p>"
    if f.health_by:
        health = _table(
            ["state", "caused by a send-event of kind", "changes"],
            [[h.state, h.cause, h.count] for h in f.health_by],
        ) + _table(
            ["changed at", "client", "channel", "resource", "state", "until", "reason"],
            [
                [
                    _when(h.changed_at),
                    h.client_id,
                    h.channel,
                    h.resource_id,
                    h.state,
                    "loaded again as active" if h.until is None else _when(h.until),
                    h.reason,
                ]
                for h in f.health_listed
            ],
            css="skipped",
        )
        more = f.health_changes - len(f.health_listed)
        if more > 0:
            health += f"<p>… and {more:,} more health changes, counted above.</p>"
    else:
        health = "<p>No resource changed its health.</p>"
    if f.per_day:
        days = _table(
            [
                "day (client-local, of the event)",
                "send-events applied",
                "sends given back",
                "sends cancelled",
                "health changes",
            ],
            [
                [d.day, d.send_events, d.refunds, d.cancellations, d.health_changes]
                for d in f.per_day[:FEEDBACK_DAYS_SHOWN]
            ],
        )
        more = len(f.per_day) - FEEDBACK_DAYS_SHOWN
        if more > 0:
            days += f"<p>… and {more:,} more days (summary.json lists them all).</p>"
    else:
        days = "<p>No send-event was applied.</p>"
    return (
        f"<p>{_e(sentence)}</p>"
        + figures
        + "<h3>Send-events by kind</h3>"
        + (kinds if f.send_events else "<p>No send-event was applied.</p>")
        + "<h3>Cancelled sends, by channel and reason</h3>"
        + cancelled
        + "<h3>Resource health changes</h3>"
        + health
        + "<h3>Feedback over time</h3>"
        + "<p>Per day of the send-events (their occurred_at in the client's zone). The "
        "suppressed channel entries per day are in the first chart (status suppressed).</p>" + days
    )


def _feedback_comparison_html(comparison: Comparison) -> str:
    if not comparison.has_feedback():
        return ""
    rows = _table(
        ["figure", "baseline", "variant", "change (variant minus baseline)"],
        [
            [FEEDBACK_LABELS.get(key, key), a, b, Shown(f"{b - a:+,}")]
            for key, a, b in comparison.feedback_changes()
        ],
    )
    return (
        "<h3>Feedback: baseline and variant</h3>"
        "<p>The variant replays the same send-events. One naming a send the variant did "
        "not reserve (it chose another resource, or no send) is skipped in the variant; "
        "thresholds (bounce_rate_limit, complaint_limit, cooldown_hours), suppression_days "
        "and the sticky sender change what the others do.</p>" + rows
    )


def _comparison_html(comparison: Comparison, figures: list[go.Figure]) -> str:
    """The comparison's section; its charts are appended to `figures` and drawn
    where their placeholders stand."""
    base, variant = comparison.baseline, comparison.variant
    rules = _table(
        ["rule", "baseline", "variant"],
        [
            [RULE_LABELS.get(key, key), _rule_value(key, base.rules.get(key)), _rule_value(key, v)]
            for key, v in variant.rules.items()
        ],
    )
    status_rows: list[list[Cell]] = [
        [
            STATUS_LABELS[s],
            base.status_count(s),
            variant.status_count(s),
            Shown(f"{variant.status_count(s) - base.status_count(s):+,}"),
        ]
        for s in REPORTED_STATUSES
    ]
    status_rows.append(
        [
            "allocated on any day",
            base.allocated_any_day,
            variant.allocated_any_day,
            Shown(f"{variant.allocated_any_day - base.allocated_any_day:+,}"),
        ]
    )
    statuses = _table(
        ["status", "baseline", "variant", "change (variant minus baseline)"], status_rows
    )
    moves = comparison.changes.to_json()
    changes = _table([CHANGE_LABELS[k] for k in moves], [list(moves.values())])
    capacity: dict[tuple[str, str], dict[str, Cell]] = {}
    for side, summary in (("baseline", base), ("variant", variant)):
        for row in summary.capacity_needed:
            entry = capacity.setdefault((row.client_id, row.channel), {})
            entry[f"{side} demand"] = row.peak_demand
            entry[f"{side} capacity"] = (
                "unlimited" if row.daily_capacity is None else row.daily_capacity
            )
            entry[f"{side} shortfall"] = row.shortfall
    columns = [
        "baseline demand",
        "baseline capacity",
        "baseline shortfall",
        "variant capacity",
        "variant shortfall",
    ]
    needs = _table(
        [
            "client",
            "channel",
            "sends asked for on the busiest day",
            "baseline daily capacity",
            "baseline shortfall",
            "variant daily capacity",
            "variant shortfall",
        ],
        [
            [client, channel, *(e.get(c, "-") for c in columns)]
            for (client, channel), e in sorted(capacity.items())
        ],
    )
    a, b = base.usage_balance_spread, variant.usage_balance_spread
    verdict = (
        "the same"
        if a == b
        else ("more even under the variant" if b < a else "less even under the variant")
    )
    balance = (
        "<p>Usage balance measures how evenly a client's sends spread across its resources "
        "of one channel with equal daily limits: per client, channel and day, the busiest "
        "resource's sends minus the least used one's, averaged; 0 is perfectly even. "
        f"Baseline: {a:g} sends; variant: {b:g} sends ({verdict}).</p>"
    )
    charts = [
        compare_status_figure(comparison),
        compare_shortfall_figure(comparison),
        compare_balance_figure(comparison),
    ]
    first = len(figures)
    figures.extend(charts)
    return (
        f"<h2>Baseline vs {_e(variant.rules_name)}</h2>"
        + rules
        + _chart(first)
        + statuses
        + "<h3>Sends that change</h3>"
        + "<p>Lead by lead and channel by channel, how the variant's sends differ from "
        "the baseline's.</p>"
        + changes
        + _reason_comparison_html(comparison)
        + _feedback_comparison_html(comparison)
        + "<h3>Capacity needed to serve every lead on the day it asked for</h3>"
        + _chart(first + 1)
        + needs
        + "<h3>Usage balance</h3>"
        + balance
        + _chart(first + 2)
    )


def _chart(index: int) -> str:
    """Where figure `index` of the page goes (filled in by write_report)."""
    return f"<!--chart {index}-->"


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#212529}
h1{margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #dee2e6;padding-bottom:.2em}
table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ced4da;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.skipped td{font-size:.9em}
ul.legend{list-style:none;padding:0}ul.legend li{margin:.3em 0}
.swatch{display:inline-block;width:1em;height:1em;margin-right:.5em;vertical-align:middle}
.bar{display:inline-block;height:.8em;margin-right:.5em;background:#7048e8;vertical-align:middle}
"""


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
    body = (
        "<h1>Allocator replay report</h1>"
        f"<p>Rules: {_e(summary.rules_name)}</p>"
        "<h2>Inputs covered</h2>"
        + _inputs_html(summary.inputs, summary.invalid_by_code)
        + "<h2>Statuses</h2>"
        + _overview_html(summary)
        + "<h2>Per client: channel entries per day and resource use</h2>"
        + _clients_html(summary)
        + _chart(0)
        + _chart(1)
        + _unlimited_note(summary)
        + "<h2>Capacity needed to serve every lead on the day it asked for</h2>"
        + _capacity_table(summary)
        + "<h2>Why channel entries moved: reasons</h2>"
        + _reasons_html(summary)
        + "<h2>Feedback from the dispatchers: refunds, cancellations, resource health</h2>"
        + _feedback_html(summary)
        + "<h2>Deferrals and exhaustion by tier, and send times</h2>"
        + _chart(2)
        + _send_times_html(summary)
        + _chart(3)
        + (_comparison_html(comparison, figures) if comparison is not None else "")
    )
    for index, fig in enumerate(figures):
        drawn = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{index}")
        body = body.replace(_chart(index), f'<section class="chart">{drawn}</section>')
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Allocator replay report</title>"
        f"<style>{STYLE}</style>"
        # The library once, inline: the page opens offline and draws every chart.
        f'<script type="text/javascript">{get_plotlyjs()}</script>'
        f"</head>\n<body>{body}</body></html>\n"
    )
    (out / "index.html").write_text(page, encoding="utf-8")
    return out / "index.html"
