"""The `allocator` command: the command line parsed, and each command handed to
its module in streams/commands/.

Whatever fails is said in one or two lines naming what is at fault and the
fix (streams/commands/errors.py), exit status 1 for a service or a file's
content and 2 for the command line or the configuration; `allocator --debug
...` shows the traceback instead. `allocator worker ...` is faust's worker
behind our own help (streams/commands/worker.py); every other command is ours.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn

from allocator.config import Settings
from streams.commands.errors import USAGE, CommandError, explain, library_logs_hidden

DESCRIPTION = """\
Allocate outreach channels, sending resources and send times to scored leads."""

EPILOG = """\
`allocator COMMAND --help` tells a command's options. Configuration is by
ALLOCATOR_* environment variables (README.md, "Configuration"), e.g.
ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS, ALLOCATOR_REDIS_URL, ALLOCATOR_DATABASE_URL.
Exit status: 0 done, 1 a service or a file's content failed, 2 the command
line or an ALLOCATOR_* value cannot work."""


def package_version() -> str:
    try:
        return version("allocator")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


class _Formatter(argparse.HelpFormatter):
    """argparse's help, with each command listed once: without the line of the
    commands' own metavar that argparse puts above them."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=28)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            # argparse measures the commands at their group's indent but prints
            # them two columns deeper, and then wraps the longest name.
            longest = max(map(len, action.choices), default=0) + self._current_indent + 2
            self._action_max_length = max(self._action_max_length, longest)

    def _format_action(self, action: argparse.Action) -> str:
        text = super()._format_action(action)
        if isinstance(action, argparse._SubParsersAction):
            return "".join(text.splitlines(keepends=True)[1:])
        return text


class _TopFormatter(_Formatter, argparse.RawDescriptionHelpFormatter):
    """The top help keeps its epilog's lines as written."""


class _Parser(argparse.ArgumentParser):
    """A usage error as one line and a pointer to the help, not argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{self.prog}: {message}\n  see `{self.prog} --help`", USAGE)


def _commands(parser: argparse.ArgumentParser) -> Any:
    return parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", parser_class=_Parser
    )


def _leaf(group: Any, name: str, summary: str, description: str | None = None) -> Any:
    """A command that takes its own options, --debug among them."""
    parser = group.add_parser(
        name, help=summary, description=description or summary, formatter_class=_Formatter
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,  # keeps `allocator --debug COMMAND`'s answer
        help="show the traceback of a failure",
    )
    return parser


def _actions(group: Any, name: str, summary: str) -> Any:
    """A command with actions (`clients load`, `clients list`)."""
    parser = group.add_parser(name, help=summary, description=summary, formatter_class=_Formatter)
    return parser.add_subparsers(
        dest="action", metavar="ACTION", title="actions", required=True, parser_class=_Parser
    )


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")


def parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog="allocator", description=DESCRIPTION, epilog=EPILOG, formatter_class=_TopFormatter
    )
    top.add_argument("--version", action="version", version=f"allocator {package_version()}")
    top.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    commands = _commands(top)
    # Parsed by faust, after our own help (streams/commands/worker.py); listed
    # here so that the help shows it.
    commands.add_parser(
        "worker", help="run the stream worker (`allocator worker --help`)", add_help=False
    )

    demo = _leaf(
        commands,
        "demo",
        "run the whole pipeline on embedded defaults, then a summary",
        "Start an embedded broker, load the sample clients and resources, run a "
        "worker, produce sample patterns and leads, print the allocations per "
        "tier and channel and the dead letters, and stop everything it started.",
    )
    demo.add_argument(
        "--leads", type=int, default=300, help="sample leads to produce (default %(default)s)"
    )

    topics = _actions(commands, "topics", "create the allocator's topics on the broker")
    _leaf(
        topics,
        "create",
        "create the missing topics (ALLOCATOR_TOPIC_PARTITIONS, _REPLICATION_FACTOR)",
    )

    for table, one in (("clients", "client"), ("resources", "resource"), ("pools", "pool")):
        group = _actions(commands, table, f"load {table} into the database, or list them")
        load = _leaf(group, "load", f"upsert {table} from a JSON Lines file, all or nothing")
        load.add_argument("file", help=f"JSON Lines, one {one} per line")
        listing = _leaf(group, "list", f"the {table} in the database (ALLOCATOR_DATABASE_URL)")
        if table != "clients":
            listing.add_argument("--client", metavar="CLIENT_ID", help="one client's only")
        _json_flag(listing)

    leads = _actions(commands, "leads", "load scored leads for the library API's allocate()")
    load = _leaf(leads, "load", "upsert scored leads from a JSON Lines file, all or nothing")
    load.add_argument("file", help="JSON Lines, one scored lead per line (lead_id wins)")

    dlq = _actions(commands, "dlq", "show the dead letters, counted by error code")
    show = _leaf(
        dlq,
        "show",
        "the dead letters on ALLOCATOR_TOPIC_DLQ by error code, and the latest of them",
        "Read the DLQ topic from its start (or --since) without a consumer group, "
        "count its records by error code and list the most recent.",
    )
    show.add_argument("--since", metavar="TIME|DURATION", help="e.g. 2h, 7d, 2026-11-26T13:00Z")
    show.add_argument("--code", metavar="CODE", help="one error code only (topics.md lists them)")
    show.add_argument(
        "--limit", type=int, default=20, metavar="N", help="records listed (default 20; 0: all)"
    )
    _json_flag(show)

    broker = _leaf(
        commands,
        "broker",
        "run the embedded broker in the foreground",
        "Run the embedded Kafka-compatible broker (Tansu) until Ctrl-C, on the "
        "given port, keeping topics in memory. The README's walkthrough uses it.",
    )
    broker.add_argument("--port", type=int, default=9092, help="loopback port (default 9092)")
    samples = _leaf(
        commands,
        "samples",
        "write sample clients, resources, patterns and leads",
    )
    samples.add_argument("folder", help="where to write them (made if missing)")
    samples.add_argument("--leads", type=int, default=50, help="sample leads (default 50)")
    send = _leaf(
        commands,
        "send",
        "send a JSON Lines file to a topic (the scored leads)",
    )
    send.add_argument("file", help="JSON Lines, one record per line")
    send.add_argument("--topic", help="default ALLOCATOR_TOPIC_SCORED_LEADS")
    read = _leaf(
        commands,
        "read",
        "print a topic's records (the allocations)",
    )
    read.add_argument("--topic", help="default ALLOCATOR_TOPIC_ALLOCATIONS")
    read.add_argument("--limit", type=int, default=20, help="records to print (default 20)")
    read.add_argument(
        "--seconds", type=float, default=10.0, help="how long to wait for them (default 10)"
    )

    usage = _leaf(
        commands,
        "usage",
        "live counters, caps, weeks, pools and health per resource",
        "Per resource (active or paused): its counter on the day, that day's cap "
        "(after warm-up), its rolling week (the day and the 6 before) and its pool's, "
        "read from the live quota counters (ALLOCATOR_REDIS_URL).",
    )
    usage.add_argument("--client", metavar="CLIENT_ID", help="one client's only")
    usage.add_argument(
        "--day", metavar="YYYY-MM-DD", help="default: today in each client's time zone"
    )
    _json_flag(usage)

    replay = _leaf(
        commands,
        "replay",
        "backtest history through the allocator",
        "Replay scored leads (and patterns and send-events) through the allocator in event "
        "time. "
        "Never touches the live quota counters.",
    )
    from allocator.replay.options import add_arguments

    add_arguments(replay)
    return top


def _wants_debug(argv: list[str]) -> bool:
    """--debug before the command, or among our own command's options (a worker's
    --debug is faust's own)."""
    command = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), len(argv))
    if "--debug" in argv[:command]:
        return True
    return command < len(argv) and argv[command] != "worker" and "--debug" in argv[command:]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _wants_debug(args)
    try:
        if debug:
            return _run(args)
        with library_logs_hidden():
            return _run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug:
            raise
        error = explain(exc)
        print(error.message, file=sys.stderr)
        return error.status


def _run(argv: list[str]) -> int:
    leading = [arg for arg in argv[:1] if arg == "--debug"]
    rest = argv[len(leading) :]
    if rest and rest[0] == "worker":
        from streams.commands import worker

        return worker.run(rest[1:])
    try:
        args = parser().parse_args(argv)
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else 0
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command is None:
        parser().print_help()
        return 0
    if args.command == "replay":
        from allocator.replay.command import run

        return run(args)
    if args.command == "demo":
        from streams.demo import run_demo

        return run_demo(args.leads)

    if args.command in ("broker", "samples"):
        from pathlib import Path

        from streams.commands import walkthrough

        if args.command == "broker":
            return walkthrough.broker(args.port)
        return walkthrough.samples(Path(args.folder), args.leads)

    settings = Settings()
    if args.command in ("send", "read"):
        from pathlib import Path

        from streams.commands import walkthrough

        if args.command == "send":
            return walkthrough.send(Path(args.file), args.topic, settings)
        return walkthrough.read(args.topic, args.limit, args.seconds, settings)
    if args.command == "topics":
        from streams.commands import topics

        return topics.create(settings)
    if args.command == "dlq":
        return _dlq_show(args, settings)
    if args.command == "usage":
        from streams.commands import usage

        return usage.show(settings, args.client, args.day, args.json)
    if args.action == "load":
        from streams.commands.loading import load

        return load(args.command, args.file, settings.database_url, settings)
    from streams.commands import listing

    if args.command == "clients":
        return listing.show_clients(settings.database_url, args.json)
    if args.command == "pools":
        return listing.show_pools(settings.database_url, args.client, args.json)
    return listing.show_resources(settings.database_url, args.client, args.json)


def _dlq_show(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    from streams.commands import dlq

    since = dlq.parse_since(args.since, datetime.now(UTC)) if args.since else None
    code = dlq.parse_code(args.code) if args.code else None
    if args.limit < 0:
        raise CommandError(f"--limit {args.limit}: give 0 (all) or more", USAGE)
    return dlq.show(
        settings.kafka_bootstrap_servers,
        settings.topic_dlq,
        since,
        code,
        args.limit,
        args.json,
        settings.kafka_client_options(),
    )


if __name__ == "__main__":
    sys.exit(main())
