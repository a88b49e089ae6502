"""The flags of `allocator replay`: declared once, parsed once into `ReplayOptions`,
and checked before any work starts, so that a mistake costs one line, not a replay."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from allocator.replay.rules import Rules
from allocator.replay.sources import Bound

BOUND_FIX = "give an offset (1200) or a time with its UTC offset (2026-11-26T13:00:00Z)"
RULES_FIX = "fix the rules file (its fields: README, 'Replay and backtesting')"
RULES_PATH_FIX = "give the path of a rules file (JSON; README, 'Replay and backtesting')"


class OptionsError(ValueError):
    """A flag whose value cannot work; one line naming the flag, the problem and the fix."""

    def __init__(self, flag: str, value: object, problem: str, fix: str) -> None:
        self.flag = flag
        self.value = value
        super().__init__(f"{flag} {value}: {problem}; {fix}")


@dataclass(frozen=True)
class ReplayOptions:
    """What one `allocator replay` was asked to do, every value checked."""

    out: Path
    leads: Path | None = None  # exactly one of leads, leads_topic
    leads_topic: str | None = None
    patterns: Path | None = None  # at most one of patterns, patterns_topic
    patterns_topic: str | None = None
    send_events: Path | None = None  # at most one of send_events, send_events_topic
    send_events_topic: str | None = None
    start: Bound | None = None  # topic sources only
    end: Bound | None = None
    clients: Path | None = None  # None: the database's
    resources: Path | None = None
    pools: Path | None = None
    report: Path | None = None
    cancellations: Path | None = None  # lead-cancellations records written here
    health: Path | None = None  # resource-health records written here
    variant: Rules | None = None  # --compare, already parsed
    compare: Path | None = None  # the rules file it was read from
    redis_namespace: str | None = None  # None: quotas counted in memory
    workers: int | None = None  # processes deciding; None: one per usable CPU
    quiet: bool = False

    @property
    def reads_topics(self) -> bool:
        return (
            self.leads_topic is not None
            or self.patterns_topic is not None
            or self.send_events_topic is not None
        )

    @property
    def reads_send_events(self) -> bool:
        return self.send_events is not None or self.send_events_topic is not None

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> ReplayOptions:
        """The options `add_arguments`' flags gave, or OptionsError for the first bad one."""
        reads_topics = bool(args.leads_topic or args.patterns_topic or args.send_events_topic)
        start = _bound(args.start, "--from", reads_topics)
        end = _bound(args.end, "--to", reads_topics)
        if start and end and _empty_window(start, end):
            raise OptionsError(
                "--to", args.end, f"not after --from {args.start}", "give a later --to"
            )
        out = _out_file(args.out, "--out")
        cancellations = _optional_out_file(args.cancellations, "--cancellations")
        health = _optional_out_file(args.health, "--health")
        _distinct_outputs({"--out": out, "--cancellations": cancellations, "--health": health})
        return cls(
            leads=_input_file(args.leads, "--leads"),
            leads_topic=args.leads_topic,
            patterns=_input_file(args.patterns, "--patterns"),
            patterns_topic=args.patterns_topic,
            send_events=_input_file(args.send_events, "--send-events"),
            send_events_topic=args.send_events_topic,
            start=start,
            end=end,
            clients=_input_file(args.clients, "--clients"),
            resources=_input_file(args.resources, "--resources"),
            pools=_input_file(args.pools, "--pools"),
            out=out,
            cancellations=cancellations,
            health=health,
            report=_report_folder(args.report),
            variant=_rules(args.compare),
            compare=None if args.compare is None else Path(args.compare),
            redis_namespace=args.redis_namespace,
            workers=_workers(args.workers),
            quiet=args.quiet,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    leads = parser.add_mutually_exclusive_group(required=True)
    leads.add_argument("--leads", metavar="FILE", help="scored leads, JSON Lines")
    leads.add_argument("--leads-topic", metavar="TOPIC", help="scored leads from a Kafka topic")
    patterns = parser.add_mutually_exclusive_group()
    patterns.add_argument("--patterns", metavar="FILE", help="conversion patterns, JSON Lines")
    patterns.add_argument(
        "--patterns-topic",
        metavar="TOPIC",
        help="conversion patterns from a Kafka topic (read from its start)",
    )
    sends = parser.add_mutually_exclusive_group()
    sends.add_argument(
        "--send-events",
        metavar="FILE",
        help="send-events (feedback from the dispatchers), JSON Lines, merged by occurred_at",
    )
    sends.add_argument(
        "--send-events-topic",
        metavar="TOPIC",
        help="send-events from a Kafka topic (bounded by --from/--to)",
    )
    parser.add_argument(
        "--from",
        dest="start",
        metavar="TIME|OFFSET",
        help="topic sources: first record (RFC 3339 time or offset)",
    )
    parser.add_argument(
        "--to",
        dest="end",
        metavar="TIME|OFFSET",
        help="topic sources: only records before this record time, or this offset",
    )
    parser.add_argument("--clients", metavar="FILE", help="clients, JSON Lines (default: database)")
    parser.add_argument(
        "--resources", metavar="FILE", help="resources, JSON Lines (default: database)"
    )
    parser.add_argument(
        "--pools",
        metavar="FILE",
        help="pools, JSON Lines (default: database, read when a resource names a pool)",
    )
    parser.add_argument(
        "--out", metavar="FILE", required=True, help="allocations, JSON Lines, in input order"
    )
    parser.add_argument(
        "--cancellations",
        metavar="FILE",
        help="write the lead-cancellations records the send-events produced, JSON Lines",
    )
    parser.add_argument(
        "--health",
        metavar="FILE",
        help="write the resource-health records the send-events produced, JSON Lines",
    )
    parser.add_argument("--report", metavar="DIR", help="write index.html and summary.json here")
    parser.add_argument(
        "--compare",
        metavar="RULES",
        help="also replay under these rules (JSON; see README) and report the differences",
    )
    parser.add_argument(
        "--redis-namespace",
        metavar="NAME",
        help="keep replay counters in Redis (ALLOCATOR_REDIS_URL) under "
        "replay:NAME: instead of in memory",
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        help="processes that decide leads, clients split among them (default: one per CPU "
        "this process may run on, at most 8); one with --redis-namespace, under 10,000 "
        "leads, or off Linux",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def _workers(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        workers = int(text)
    except ValueError:
        workers = 0
    if workers < 1:
        raise OptionsError("--workers", text, "not a whole number of 1 or more", "give e.g. 2")
    return workers


def _bound(text: str | None, flag: str, reads_topics: bool) -> Bound | None:
    if text is not None and not reads_topics:
        # Files have no record times or offsets: the flag would be silently ignored.
        raise OptionsError(
            flag,
            text,
            "bounds topic sources only",
            "drop it, or read --leads-topic/--patterns-topic/--send-events-topic",
        )
    try:
        return Bound.parse(text)
    except ValueError as exc:
        raise OptionsError(flag, text, str(exc), BOUND_FIX) from None


def _empty_window(start: Bound, end: Bound) -> bool:
    """Whether --to does not come after --from. An offset and a time do not compare:
    offsets run per partition, times across them."""
    if start.at is not None and end.at is not None:
        return end.at <= start.at
    if start.offset is not None and end.offset is not None:
        return end.offset <= start.offset
    return False


def _input_file(text: str | None, flag: str) -> Path | None:
    if text is None:
        return None
    path = Path(text)
    if not path.exists():
        raise OptionsError(flag, text, "no such file", "give the path of a JSON Lines file")
    if path.is_dir():
        raise OptionsError(flag, text, "is a folder", "give the path of a JSON Lines file")
    if not os.access(path, os.R_OK):
        raise OptionsError(flag, text, "not readable", "give a file you can read")
    return path


def _out_file(text: str, flag: str) -> Path:
    path = Path(text)
    folder = path.parent
    if path.is_dir():
        raise OptionsError(flag, text, "is a folder", f"give a file, e.g. {path / 'out.jsonl'}")
    if not folder.is_dir():
        raise OptionsError(
            flag, text, f"folder {folder} does not exist", f"create it (mkdir -p {folder})"
        )
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OptionsError(
            flag, text, f"cannot write in {folder}", "choose a folder you can write to"
        )
    return path


def _optional_out_file(text: str | None, flag: str) -> Path | None:
    return None if text is None else _out_file(text, flag)


def _distinct_outputs(outputs: dict[str, Path | None]) -> None:
    """Two output flags naming one file would write over each other."""
    seen: dict[Path, str] = {}
    for flag, path in outputs.items():
        if path is None:
            continue
        same = path.resolve()
        if same in seen:
            raise OptionsError(
                flag, path, f"{seen[same]} writes it too", f"give {flag} a file of its own"
            )
        seen[same] = flag


def _report_folder(text: str | None) -> Path | None:
    """The report's folder if it exists and is writable, or could be made (its
    nearest existing ancestor is a writable folder). Nothing is created here."""
    if text is None:
        return None
    path = Path(text)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == path else f"{existing} is a file"
        raise OptionsError("--report", text, where, "give a folder (it is created if missing)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OptionsError(
            "--report", text, f"cannot write in {existing}", "choose a folder you can write to"
        )
    return path


def _rules(text: str | None) -> Rules | None:
    if text is None:
        return None
    try:
        return Rules.from_file(text)
    except FileNotFoundError:
        raise OptionsError("--compare", text, "no such file", RULES_PATH_FIX) from None
    except OSError as exc:
        raise OptionsError("--compare", text, exc.strerror or str(exc), RULES_PATH_FIX) from None
    except ValueError as exc:
        # Rules.from_file names the file first; here the flag and the file lead the line.
        problem = " ".join(str(exc).split()).removeprefix(f"{text}: ")
        raise OptionsError("--compare", text, problem, RULES_FIX) from None
