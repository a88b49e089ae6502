"""The `allocator` command.

`allocator worker ...` is faust's own worker command (`-l`, `--web-port` and the
rest of faust's options); every other subcommand is ours.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from allocator.config import Settings
from allocator.errors import LoadError

DESCRIPTION = """\
Allocate outreach channels, sending resources and send times to scored leads.

commands:
  worker [-l info] [--web-port N]   run the faust stream worker (faust's options)
  demo                              the whole pipeline on embedded defaults
  clients load FILE                 upsert clients from JSON Lines
  resources load FILE               upsert resources from JSON Lines
  replay --leads FILE ...           backtest history through the allocator
  topics create                     create the allocator's topics on the broker

Configuration is by ALLOCATOR_* environment variables (see README.md), e.g.
ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS, ALLOCATOR_REDIS_URL, ALLOCATOR_DATABASE_URL.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="allocator",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("worker", help="run the faust stream worker", add_help=False)
    demo = commands.add_parser("demo", help="the whole pipeline on embedded defaults")
    demo.add_argument("--leads", type=int, default=300, help="sample leads to produce")
    replay = commands.add_parser(
        "replay",
        help="backtest history through the allocator",
        description="Replay scored leads (and patterns) through the allocator in event time. "
        "Never touches the live quota counters.",
    )
    from allocator.replay.command import add_arguments

    add_arguments(replay)
    commands.add_parser("topics", help="create the allocator's topics").add_argument(
        "action", choices=["create"]
    )
    for table in ("clients", "resources"):
        group = commands.add_parser(table, help=f"manage {table} in the database")
        actions = group.add_subparsers(dest="action", required=True)
        load = actions.add_parser("load", help=f"upsert {table} from a JSON Lines file")
        load.add_argument("file", help=f"JSON Lines, one {table[:-1]} per line")
    return parser


def _load(table: str, path: str) -> int:
    """`clients load` / `resources load`: 0, or 1 with a message naming the file."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from allocator.store import Database
    from allocator.store.loaders import (
        read_clients,
        read_resources,
        write_clients,
        write_resources,
    )

    # The whole file is read and checked before any database is opened, so an
    # OSError here is the file's (missing, a directory), never the database's.
    try:
        clients = read_clients(path) if table == "clients" else []
        resources = read_resources(path) if table == "resources" else []
    except LoadError as err:
        print(err, file=sys.stderr)
        return 1
    except OSError as err:
        print(f"{path}: {err.strerror or err}", file=sys.stderr)
        return 1

    url = Settings().database_url

    async def write() -> None:
        async with Database(url) as db:
            if table == "clients":
                await write_clients(db, clients)
            else:
                await write_resources(db, resources)

    try:
        asyncio.run(write())
    except (OSError, SQLAlchemyError) as err:
        # The server refused or the file could not be opened: say which database.
        reason = str(getattr(err, "orig", None) or getattr(err, "strerror", None) or err)
        shown = make_url(url).render_as_string(hide_password=True)
        first = reason.splitlines()[0] if reason.strip() else type(err).__name__
        print(f"database {shown}: {first}", file=sys.stderr)
        return 1
    print(f"loaded {len(clients) + len(resources)} {table} from {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "worker":
        from streams.app import run_worker

        return run_worker(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.command in ("clients", "resources"):
        return _load(args.command, args.file)
    if args.command == "replay":
        from allocator.replay.command import run

        return run(args)
    if args.command == "demo":
        from streams.demo import run_demo

        return run_demo(args.leads)
    if args.command == "topics":
        from streams.topics import ensure_topics

        counts = asyncio.run(ensure_topics(Settings()))
        for name, partitions in counts.items():
            print(f"{name}: {partitions} partitions")
        return 0
    _parser().print_help()
    return 0 if args.command is None else 2


if __name__ == "__main__":
    sys.exit(main())
