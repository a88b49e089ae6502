"""Health and metrics pages on the faust web server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from faust.exceptions import ConsumerNotStarted
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.commits import Commits
from streams.metrics import Metrics


def crashed_agents(app: Any, commits: Sequence[Commits]) -> dict[str, str]:
    """Agents that stopped, with why: the process lives but consumes nothing (pitfalls #5).

    Our own record comes first: faust's supervisor restarts a crashed actor and
    clears its crash flag, while a batch that could not finish stops the agent
    for good (streams/commits.py).
    """
    crashed = {c.name: c.why for c in commits if c.why is not None}
    for name, agent in app.agents.items():
        actors = list(getattr(agent, "_actors", ()))
        if any(actor._crashed.is_set() for actor in actors) or agent._crashed.is_set():
            crashed.setdefault(name, "crashed")
    return crashed


def assignment(app: Any) -> set[Any]:
    """The partitions the worker consumes; none yet while its consumer thread
    starts (the web server answers from before then: a probe polling /ready
    got a 500 and a traceback in that moment)."""
    try:
        return set(app.consumer.assignment())
    except ConsumerNotStarted:
        return set()


def update_lag(app: Any, metrics: Metrics) -> None:
    # Kafka's semantics: high watermark minus the next offset to process.
    # (Tansu 0.6 reports low watermarks; see topics.md.)
    consumer = app.consumer
    for tp in assignment(app):
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # no fetch yet for this partition
            continue
        last_read = consumer._read_offset.get(tp)
        next_offset = 0 if last_read is None else last_read + 1
        if highwater is not None:
            metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                max(highwater - next_offset, 0)
            )


def is_ready(app: Any, crashed: Mapping[str, str]) -> bool:
    """Consuming: partitions assigned, no rebalance under way, no agent crashed."""
    return not crashed and not app.rebalancing and bool(assignment(app))


def register_pages(app: Any, metrics: Metrics, commits: Sequence[Commits]) -> None:
    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        crashed = crashed_agents(app, commits)
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in assignment(app))
        body = {
            "live": not crashed,
            "ready": is_ready(app, crashed),
            "crashed_agents": sorted(crashed),
            "errors": crashed,
            "assigned": assigned,
        }
        return web.json(body, status=200 if not crashed else 503)

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        ready = is_ready(app, crashed_agents(app, commits))
        return web.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        update_lag(app, metrics)
        # aiohttp refuses a charset inside content_type=, so the header goes whole.
        return web.bytes(
            generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
