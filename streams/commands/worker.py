"""`allocator worker`: our help in front of faust's worker command.

faust spells --web-host as -h, so `allocator worker -h` used to fail with
faust's "Option '-h' requires an argument" where every other command prints
its help. Here -h and --help print the options we document, and anything
else goes to faust unchanged (the host is --web-host).
"""

from __future__ import annotations

HELP = """\
usage: allocator worker [-l LEVEL] [--web-port N] [faust worker options]

Run the stream worker: make missing topics and tables, then allocate every
lead of ALLOCATOR_TOPIC_SCORED_LEADS to ALLOCATOR_TOPIC_ALLOCATIONS, hold
the patterns of ALLOCATOR_TOPIC_CONVERSION_PATTERNS, apply the dispatchers'
feedback of ALLOCATOR_TOPIC_SEND_EVENTS (cancellations to
ALLOCATOR_TOPIC_LEAD_CANCELLATIONS, health changes to
ALLOCATOR_TOPIC_RESOURCE_HEALTH), and dead-letter bad records to
ALLOCATOR_TOPIC_DLQ. Stop it with SIGTERM or Ctrl-C.

options:
  -h, --help              show this help and exit
  -l, --loglevel LEVEL    crit, error, warn (the default), info or debug
  --web-port N            port of /health, /ready and /metrics
                          (default ALLOCATOR_WEB_PORT, 6066)

Every other option of faust's worker is accepted as faust documents it
(--web-host HOST, --web-bind ADDR, --without-web, -f/--logfile FILE, ...);
faust's short -h for --web-host is not, since -h is help here.
Configuration is by ALLOCATOR_* environment variables (README.md).
"""

HELP_FLAGS = frozenset({"-h", "--help"})


def run(argv: list[str]) -> int:
    """The worker with faust's options `argv`, or our help if they ask for it."""
    if HELP_FLAGS & set(argv):
        print(HELP, end="")
        return 0
    from streams.app import run_worker  # faust is imported only to run it

    return run_worker(argv)
