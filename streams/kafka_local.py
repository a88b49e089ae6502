"""A local Apache Kafka 4.x (KRaft) broker for the tests and for developers.

The embedded Tansu broker (streams/broker.py) is Kafka-compatible, not Kafka:
it has no transactions and undercounts high watermarks (topics.md). This
module runs the real thing from the jars Maven resolves from kafka/pom.xml,
without a Kafka distribution or Docker:

    with KafkaBroker() as broker:          # one combined broker+controller node
        use(broker.bootstrap)              # "127.0.0.1:PORT"
    with KafkaCluster(3) as cluster:       # three nodes, one KRaft quorum
        cluster.nodes[0].kill(); ...; cluster.nodes[0].restart()
    with KafkaBroker(sasl_ssl=SaslSslListener(chain, key, scram_users={"alice": "pw"})) as broker:
        use(broker.sasl_ssl_bootstrap)     # TLS + SASL (PLAIN, SCRAM-SHA-512)

`python -m streams.kafka_local` (`make kafka`) resolves the jars ahead of time.
For the tests and the demo only; production points at a real Kafka cluster.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from streams.broker import free_ports, stop_process

# The one place the version is chosen: kafka_jars() passes it to Maven, so the
# default in kafka/pom.xml is only for running that pom by hand (a test keeps
# the two equal). The newest 4.x on Maven Central when this was written.
KAFKA_VERSION = "4.4.0"

POM = Path(__file__).resolve().parents[1] / "kafka" / "pom.xml"

# The heap kafka-server-start.sh would get from KAFKA_HEAP_OPTS=-Xmx512m
# (we start java ourselves, without the scripts), plus flags that make a
# short-lived test broker start fast on a small machine: the serial collector
# (no GC threads competing for 2 cores) and C1 only (the JIT's second tier
# costs start-up CPU a test broker never earns back; it lowers peak
# throughput, so pass jvm_options=... for benchmarks).
DEFAULT_JVM_OPTIONS: tuple[str, ...] = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


def read_properties(path: Path) -> dict[str, str]:
    """A .properties file's key=value lines (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


# kafka/broker.properties: what docker-compose.yml's Kafka runs too.
BROKER_PROPERTIES = POM.parent / "broker.properties"

# What a short-lived broker on a 2-core test machine adds to it.
TEST_BOX_CONFIG: Mapping[str, str] = {
    # 50 partitions each by default: created on the first group join or the
    # first transaction (the first init_transactions took 1.95 s with 50, 1.32 s
    # with 4 here); many coordinators buy a test broker nothing.
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.num.partitions": "4",
    "share.coordinator.state.topic.num.partitions": "4",
    # A killed node keeps its registration until its session times out: in
    # a cluster it is fenced (dropped from every ISR, its partitions led by
    # others) only then, and restarted it cannot register again before
    # (DuplicateBrokerRegistrationException), even alone. 3 s instead of 9 s
    # keeps fault tests short; the heartbeat stays well under it.
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
    # Fewer threads than the defaults (8 and 3): a test broker on a 2-core box.
    "num.io.threads": "2",
    "num.network.threads": "2",
}


def base_config() -> dict[str, str]:
    """Settings of every local node (read when a node starts: an installed
    package without the repository's kafka/ folder can still be imported)."""
    return {**read_properties(BROKER_PROPERTIES), **TEST_BOX_CONFIG}


def cluster_config(size: int) -> dict[str, str]:
    """What a replicated cluster adds to base_config().

    Replication 3 (at most `size`) unless a topic says otherwise, and acks=all
    needing two in-sync replicas, so that one node can be down.
    """
    replicas = str(min(size, 3))
    min_isr = str(max(1, min(size - 1, 2)))
    return {
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
    }


LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
# One line per request at INFO and above would drown everything else.
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def _require(tool: str, why: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"'{tool}' is not on PATH: {why}")
    return path


def java_binary() -> str:
    return _require("java", "the local Kafka broker needs a Java 17+ runtime")


def _default_jar_folder() -> Path:
    configured = os.environ.get("ALLOCATOR_KAFKA_JARS")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "allocator" / f"kafka-{KAFKA_VERSION}"


def _has_kafka(folder: Path) -> bool:
    return any(folder.glob("kafka_2.13-*.jar"))


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialises one-time work across processes (pytest-xdist, parallel make)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def kafka_jars() -> Path:
    """The folder of Kafka's jars, resolved with Maven from kafka/pom.xml on first use.

    ~/.cache/allocator/kafka-<version>/ unless ALLOCATOR_KAFKA_JARS names
    another folder (an existing folder of jars, e.g. a Kafka distribution's
    libs/, is used as it is). Raises RuntimeError naming what is missing.
    """
    java_binary()  # jars without a JVM to run them would only fail later
    folder = _default_jar_folder()
    if _has_kafka(folder):
        return folder
    mvn = _require("mvn", f"resolving the Kafka {KAFKA_VERSION} jars needs Maven")
    if not POM.is_file():
        raise RuntimeError(
            f"{POM} not found: the streams package is installed outside its repository. "
            "Run `make kafka` in a checkout, or set ALLOCATOR_KAFKA_JARS to a folder "
            f"holding the Kafka {KAFKA_VERSION} jars"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(folder.parent / f".{folder.name}.lock"):
        if _has_kafka(folder):  # another process resolved them while we waited
            return folder
        # Resolved beside the target and renamed into place, so that an
        # interrupted run never leaves a half-filled folder that looks complete.
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; it is an ordinary cache
        try:
            result = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(POM),
                    "dependency:copy-dependencies",
                    f"-Dkafka.version={KAFKA_VERSION}",
                    f"-DoutputDirectory={staging}",
                    "-DincludeScope=runtime",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0 or not _has_kafka(staging):
                raise RuntimeError(
                    f"mvn could not resolve Kafka {KAFKA_VERSION} from {POM}:\n"
                    + (result.stdout + result.stderr)[-3000:]
                )
            if folder.exists():
                folder.rmdir()  # an empty folder named by ALLOCATOR_KAFKA_JARS
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _archive_key(java: str, jars: Path) -> str:
    """Names an archive after everything it was made from.

    A dynamic archive is only valid with the JVM (and the JDK's own base
    archive) and the jars it was dumped from; otherwise the JVM ignores it
    with a warning and the brokers quietly start at the slow speed. A changed
    JDK or jar folder therefore gets a new archive.
    """
    home = Path(java).parent.parent
    parts = [java]
    for path in [
        home / "lib" / "modules",
        *sorted((home / "lib").glob("server/*")),
        *sorted(jars.glob("*.jar")),
    ]:
        with contextlib.suppress(OSError):
            info = path.stat()
            parts.append(f"{path.name}:{info.st_size}:{info.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def class_data_archive(jars: Path | None = None) -> Path | None:
    """A class-data-sharing archive of a broker's classes, made once per JVM and jar folder.

    The JVM then maps the broker's classes instead of loading and verifying
    them from the jars: a broker is ready in ~1.6 s instead of ~2.8 s here.
    The archive is dumped by a throwaway broker on its way out (about 7 s,
    once). None when it cannot be made (read-only folder, a JVM that cannot
    dump); brokers then start without it.
    """
    jars = jars or kafka_jars()
    java = os.path.realpath(java_binary())
    folder = jars / "cds"
    archive = folder / f"kafka-{_archive_key(java, jars)}.jsa"
    failed = archive.with_suffix(".failed")
    if archive.is_file():
        return archive
    if failed.exists():  # tried once with this JVM and these jars: no retry every start
        return None
    try:
        folder.mkdir(exist_ok=True)
        with _file_lock(folder / "lock"):
            if archive.is_file():
                return archive
            for stale in folder.glob("kafka-*"):  # made from another JVM or other jars
                stale.unlink()
            partial = archive.with_suffix(f".{os.getpid()}.tmp")
            broker = KafkaBroker(
                class_data_sharing=False,
                jvm_options=(*DEFAULT_JVM_OPTIONS, f"-XX:ArchiveClassesAtExit={partial}"),
            )
            try:
                broker.start()
            finally:
                # The JVM dumps the archive on its way out after SIGTERM:
                # seconds, which a short grace before SIGKILL would cut off.
                broker.stop(grace=120.0)
            if not partial.is_file():  # the broker ran, the JVM could not dump
                failed.touch()
                return None
            partial.rename(archive)
    except (OSError, RuntimeError):
        # A folder we cannot write, or a broker that did not start (the real
        # start then says why): no archive this time, and no marker either.
        return None
    return archive


def _cluster_id() -> str:
    """A random id as `kafka-storage random-uuid` prints it (base64url, no padding)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka's own generator avoids these too
            return text


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# The Java class of each SASL mechanism's server-side login module.
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


@dataclass(frozen=True)
class SaslSslListener:
    """A client listener with TLS and SASL, beside the PLAINTEXT one that the
    controller, the other nodes and the readiness check keep using (so a
    secured test broker starts exactly as an open one does).

    `certificate_chain` is PEM: the broker's certificate first, then the CAs
    that signed it; it must name 127.0.0.1, the address the listener
    advertises. `private_key` is its key, unencrypted PKCS#8 PEM ("BEGIN
    PRIVATE KEY"), the one form Kafka's PEM key store reads without a key
    password. `plain_users` (name -> password) log in with SASL/PLAIN and live
    in the listener's JAAS configuration; `scram_users` log in with
    SCRAM-SHA-512 and are written into the cluster's metadata when the storage
    is formatted (`kafka-storage format --add-scram`), as a real cluster's
    admin would create them.
    """

    certificate_chain: str
    private_key: str
    plain_users: Mapping[str, str] = field(default_factory=dict)
    scram_users: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.plain_users or self.scram_users):
            raise ValueError("a SASL_SSL listener needs at least one PLAIN or SCRAM user")
        if "-----BEGIN PRIVATE KEY-----" not in self.private_key:
            raise ValueError(
                "the listener's private key must be unencrypted PKCS#8 PEM "
                "('BEGIN PRIVATE KEY'); convert it with `openssl pkcs8 -topk8 -nocrypt`"
            )
        for name, password in [*self.plain_users.items(), *self.scram_users.items()]:
            # They go into a JAAS line and a StorageTool argument unquoted.
            if not (name.isalnum() and password.isalnum()):
                raise ValueError(f"SASL user {name!r}: names and passwords must be alphanumeric")

    @property
    def mechanisms(self) -> list[str]:
        return [
            mechanism
            for mechanism, users in (
                ("PLAIN", self.plain_users),
                ("SCRAM-SHA-512", self.scram_users),
            )
            if users
        ]

    def properties(self) -> dict[str, str]:
        """The broker settings of this listener (listener.name.sasl_ssl.*)."""
        prefix = "listener.name.sasl_ssl."
        found = {
            f"{prefix}ssl.keystore.type": "PEM",
            # Inline PEM, not ssl.keystore.location: a PEM key store file
            # needs an encrypted key and ssl.key.password.
            f"{prefix}ssl.keystore.certificate.chain": self.certificate_chain,
            f"{prefix}ssl.keystore.key": self.private_key,
            f"{prefix}sasl.enabled.mechanisms": ",".join(self.mechanisms),
        }
        users = {
            "PLAIN": "".join(f' user_{name}="{pw}"' for name, pw in self.plain_users.items()),
            "SCRAM-SHA-512": "",  # SCRAM users are in the metadata, not in the JAAS line
        }
        for mechanism in self.mechanisms:
            jaas = f"{_LOGIN_MODULES[mechanism]} required{users[mechanism]};"
            found[f"{prefix}{mechanism.lower()}.sasl.jaas.config"] = jaas
        return found

    def format_arguments(self) -> list[str]:
        """StorageTool's --add-scram arguments: the SCRAM users, created with the storage."""
        arguments: list[str] = []
        for name, password in self.scram_users.items():
            arguments += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        return arguments


def _property(key: str, value: str) -> str:
    """One line of a .properties file: Java reads backslash escapes, so a
    multi-line value (a PEM block) is written with \\n and stays one line."""
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return f"{key}={escaped}\n"


class KafkaBroker:
    """One Kafka node (broker and KRaft controller in one JVM) on loopback; a context manager.

    It has its own temporary folder (data, server.properties, server.log,
    stdout.log), removed by stop(). kill() and restart() keep it, for fault
    tests: a restarted node has the same ports, id and data.
    """

    def __init__(
        self,
        node_id: int = 1,
        port: int | None = None,
        controller_port: int | None = None,
        *,
        voters: str | None = None,
        cluster_id: str | None = None,
        config: Mapping[str, str] | None = None,
        jvm_options: Sequence[str] = DEFAULT_JVM_OPTIONS,
        class_data_sharing: bool = True,
        sasl_ssl: SaslSslListener | None = None,
    ) -> None:
        if port is None or controller_port is None:
            port, controller_port = free_ports(2)
        # A port of its own for the secured listener, when there is one.
        self.sasl_ssl = sasl_ssl
        self.sasl_ssl_port = free_ports(1)[0] if sasl_ssl is not None else None
        self.node_id = node_id
        self.port = port
        self.controller_port = controller_port
        # A static quorum (controller.quorum.voters) formats with a plain
        # `format -t ID`; the dynamic one (controller.quorum.bootstrap.servers)
        # would need --standalone or --initial-controllers and buys tests nothing.
        self.voters = voters or f"{node_id}@127.0.0.1:{controller_port}"
        self.cluster_id = cluster_id or _cluster_id()
        self.config = {**base_config(), **(config or {})}
        self.jvm_options = tuple(jvm_options)
        self.class_data_sharing = class_data_sharing
        self.directory: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        self._stdout: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        """The SASL_SSL listener's address (the node must have been made with `sasl_ssl`)."""
        if self.sasl_ssl_port is None:
            raise RuntimeError("this broker has no SASL_SSL listener")
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def log_path(self) -> Path:
        return self._dir / "server.log"

    @property
    def _dir(self) -> Path:
        if self.directory is None:
            raise RuntimeError("the broker has not been started")
        return self.directory

    def properties(self) -> dict[str, str]:
        data = self._dir / "data"
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT"]
        secured: dict[str, str] = {}
        if self.sasl_ssl is not None:
            listeners.append(f"SASL_SSL://{self.sasl_ssl_bootstrap}")
            protocols.append("SASL_SSL:SASL_SSL")
            secured = self.sasl_ssl.properties()
        return {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "listeners": ",".join([*listeners, f"CONTROLLER://127.0.0.1:{self.controller_port}"]),
            "advertised.listeners": ",".join(listeners),
            "listener.security.protocol.map": ",".join([*protocols, "CONTROLLER:PLAINTEXT"]),
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.voters": self.voters,
            "log.dirs": str(data),
            **secured,
            **self.config,
        }

    def start(self, timeout: float = 60.0) -> KafkaBroker:
        """Formats its folder on first start, launches the JVM, waits until it serves metadata."""
        began = time.monotonic()
        self.launch()
        self.wait_ready({self.node_id}, deadline=began + timeout)
        self.startup_seconds = time.monotonic() - began
        return self

    def launch(self) -> None:
        """Starts the JVM without waiting (KafkaCluster starts all nodes, then waits)."""
        if self.running:
            raise RuntimeError(f"kafka node {self.node_id} is already running")
        jars = kafka_jars()
        java = java_binary()
        archive = class_data_archive(jars) if self.class_data_sharing else None
        jvm = [java, *self.jvm_options]
        if archive is not None:
            jvm.append(f"-XX:SharedArchiveFile={archive}")
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix=f"kafka-{self.node_id}-"))
            (self._dir / "server.properties").write_text(
                "".join(_property(key, value) for key, value in self.properties().items())
            )
            (self._dir / "log4j2.properties").write_text(LOG4J2.format(log=self.log_path))
        jvm += [f"-Dlog4j2.configurationFile={self._dir / 'log4j2.properties'}"]
        # The JVM expands "<folder>/*" to every jar in it; no shell involved.
        jvm += ["-cp", str(jars / "*")]
        if not (self._dir / "data" / "meta.properties").exists():
            self._format(jvm)
        if self._stdout is None:
            self._stdout = (self._dir / "stdout.log").open("ab")
        self.process = subprocess.Popen(
            [*jvm, "kafka.Kafka", str(self._dir / "server.properties")],
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def _format(self, jvm: list[str]) -> None:
        result = subprocess.run(
            [
                *jvm,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                self.cluster_id,
                "--config",
                str(self._dir / "server.properties"),
                *(self.sasl_ssl.format_arguments() if self.sasl_ssl is not None else []),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"kafka-storage format failed for node {self.node_id}:\n"
                + (result.stdout + result.stderr)[-3000:]
            )

    def wait_ready(self, node_ids: set[int], deadline: float) -> None:
        """Until this node's own metadata lists every node of `node_ids` as a live broker.

        A node lists a broker only once the controller has unfenced it and
        this node has caught up with the metadata log, so topics can be
        created and produced to as soon as this returns.
        """
        try:
            from confluent_kafka.admin import AdminClient
        except ImportError as exc:
            raise RuntimeError("waiting for Kafka needs confluent-kafka (the dev extra)") from exc

        admin: Any = None
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(
                    f"kafka node {self.node_id} exited:\n{_tail(self._dir / 'stdout.log')}"
                    f"\n{_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"kafka node {self.node_id} was not ready in time "
                    f"(waiting for brokers {sorted(node_ids)}):\n{_tail(self.log_path)}"
                )
            if admin is None:
                # The port first, so that librdkafka does not log a refused
                # connection every few milliseconds while the JVM starts.
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                        pass
                except OSError:
                    time.sleep(0.05)
                    continue
                admin = AdminClient({"bootstrap.servers": self.bootstrap})
            try:
                brokers = set(admin.list_topics(timeout=1.0).brokers)
            except Exception:  # any failure here means "not yet"
                brokers = set()
            if node_ids <= brokers:
                return
            time.sleep(0.05)

    def shutdown(self, grace: float = 30.0) -> None:
        """SIGTERM (a controlled shutdown), SIGKILL after `grace` s; keeps the data."""
        if self.process is not None:
            stop_process(self.process, grace=grace)

    def kill(self) -> None:
        """SIGKILL, as a crash; keeps the data for restart()."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, timeout: float = 60.0) -> KafkaBroker:
        """Starts it again (after kill() or shutdown()) on the same ports with the same data."""
        if self.running:
            self.shutdown()
        return self.start(timeout)

    def stop(self, grace: float = 10.0) -> None:
        """Stops the node and removes its folder."""
        self.shutdown(grace)
        self.process = None
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> KafkaBroker:
        try:
            return self.start()
        except BaseException:
            self.stop(grace=0)
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class KafkaCluster:
    """`size` combined nodes in one KRaft quorum on loopback; a context manager.

    Topics get 3 replicas (at most `size`) and min.insync.replicas 2 unless
    they say otherwise, so acks=all survives one node down. `nodes[i]` can be
    killed and restarted on its own.
    """

    def __init__(self, size: int = 3, *, config: Mapping[str, str] | None = None) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        ports = free_ports(2 * size)
        voters = ",".join(f"{i + 1}@127.0.0.1:{ports[2 * i + 1]}" for i in range(size))
        merged = {**cluster_config(size), **(config or {})}
        cluster_id = _cluster_id()
        self.nodes = [
            KafkaBroker(
                i + 1,
                ports[2 * i],
                ports[2 * i + 1],
                voters=voters,
                cluster_id=cluster_id,
                config=merged,
            )
            for i in range(size)
        ]
        self.startup_seconds: float | None = None

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def start(self, timeout: float = 120.0) -> KafkaCluster:
        """Launches every node, then waits until each sees all of them as live brokers."""
        began = time.monotonic()
        deadline = began + timeout
        # One node first makes the class-data archive if there is none yet, so
        # that the others do not each dump their own.
        if self.nodes:
            class_data_archive()
        # launch() formats with StorageTool (a JVM of half a second) and
        # starts the broker's JVM: all nodes at once, the waiting is in threads.
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            for launched in [pool.submit(node.launch) for node in self.nodes]:
                launched.result()
        everyone = {node.node_id for node in self.nodes}
        for node in self.nodes:
            node.wait_ready(everyone, deadline)
        self.startup_seconds = time.monotonic() - began
        for node in self.nodes:
            node.startup_seconds = self.startup_seconds
        return self

    def stop(self) -> None:
        """Kills every node and removes their folders.

        SIGKILL, not a controlled shutdown: the data is thrown away, and nodes
        stopping together wait for each other (about 5 s) for nothing.
        """
        for node in self.nodes:
            node.kill()
        for node in self.nodes:
            node.stop(grace=0)

    def __enter__(self) -> KafkaCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main() -> None:
    """`make kafka`: resolve the jars (and the class-data archive) once; say where."""
    try:
        jars = kafka_jars()
        archive = class_data_archive(jars)
    except RuntimeError as exc:
        sys.exit(f"make kafka: {exc}")
    files = [path for path in jars.rglob("*") if path.is_file()]
    size = sum(path.stat().st_size for path in files) / 1e6
    count = sum(1 for path in files if path.suffix == ".jar")
    print(f"Kafka {KAFKA_VERSION}: {count} jars in {jars} ({size:.0f} MB in all)")
    print(f"class-data archive: {archive or 'none (brokers start without it)'}")


if __name__ == "__main__":
    main()
