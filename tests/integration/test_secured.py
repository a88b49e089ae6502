"""Secured services, as users run them: Kafka over TLS with SASL (PLAIN and
SCRAM-SHA-512), Redis with a password over TLS (rediss://), PostgreSQL over
TLS (?ssl=...).

The tests make their own CA (trustme) and a certificate for 127.0.0.1 with it;
the Kafka broker (streams/kafka_local.py) gets a SASL_SSL listener beside its
PLAINTEXT one, and a redis-server of the tests' own serves TLS only. Every
allocator process is told about them only through ALLOCATOR_* variables, and
none may show a secret in its output or its /health.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis as redis_sync
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy import text
from sqlalchemy.engine import make_url

from allocator.channels import Channel
from allocator.config import KafkaLoginRefused, Settings
from allocator.quota import open_quota_store
from allocator.replay.sources import read_topic as replay_read_topic
from allocator.store import Database
from streams.broker import free_port, stop_process
from streams.cli import main
from streams.local import ALLOCATOR_COMMAND, read_topic, start_worker
from streams.samples import SAMPLES_DIR, sample_leads
from streams.topics import ensure_topics
from tests import services
from tests.integration.conftest import fresh_postgres, running_pipeline
from tests.replay_data import replay_args, write_history

pytestmark = pytest.mark.integration

# Alphanumeric (they go into a JAAS line, a StorageTool argument and a URL)
# and distinct per mechanism, so that a login can only pass the way it is meant to.
USER = "alice"
PASSWORDS = {"PLAIN": "PlainPw4alice", "SCRAM-SHA-512": "ScramPw4alice"}
REDIS_PASSWORD = "RedisPw4tests"
SECRETS = [*PASSWORDS.values(), REDIS_PASSWORD]
MECHANISMS = list(PASSWORDS)


def in_ci_or_skip(reason: str) -> None:
    """CI must run every secured test; a laptop without the tool skips with the reason."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the secured tests: {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class Certificates:
    """A CA of the tests' own and a certificate it signed for 127.0.0.1 and localhost."""

    ca_file: Path  # PEM: what clients trust
    chain: str  # PEM: the server's certificate, then the CA's
    key: str  # PEM, unencrypted PKCS#8 (what Kafka's PEM key store reads)
    cert_file: Path  # the chain and the key as files (redis-server reads files)
    key_file: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    trustme = pytest.importorskip("trustme")
    from cryptography.hazmat.primitives import serialization

    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    # trustme writes the key in OpenSSL's traditional form; Kafka wants PKCS#8.
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    chain = "".join(blob.bytes().decode() for blob in leaf.cert_chain_pems)
    found = Certificates(
        folder / "ca.pem", chain, pkcs8, folder / "server.pem", folder / "server.key"
    )
    ca.cert_pem.write_to_path(str(found.ca_file))
    found.cert_file.write_text(chain)
    found.key_file.write_text(pkcs8)
    return found


@pytest.fixture(scope="module")
def secured_kafka(certificates: Certificates) -> Iterator[str]:
    """A Kafka broker with a SASL_SSL listener: alice logs in with PLAIN and
    with SCRAM-SHA-512 (created when the storage is formatted), each with its
    own password. Yields the SASL_SSL listener's bootstrap address."""
    if "kafka" not in services.broker_kinds():
        pytest.skip("ALLOCATOR_TEST_BROKERS / ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS leave Kafka out")
    services.require_local_kafka()
    from streams.kafka_local import KafkaBroker, SaslSslListener

    listener = SaslSslListener(
        certificates.chain,
        certificates.key,
        plain_users={USER: PASSWORDS["PLAIN"]},
        scram_users={USER: PASSWORDS["SCRAM-SHA-512"]},
    )
    with KafkaBroker(sasl_ssl=listener) as broker:
        services.say(f"[services] Kafka: Apache Kafka with SASL_SSL at {broker.sasl_ssl_bootstrap}")
        yield broker.sasl_ssl_bootstrap


def kafka_env(
    certificates: Certificates, mechanism: str, password: str | None = None
) -> dict[str, str]:
    """The ALLOCATOR_KAFKA_* settings a user of a secured cluster sets."""
    return {
        "ALLOCATOR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "ALLOCATOR_KAFKA_SSL_CAFILE": str(certificates.ca_file),
        "ALLOCATOR_KAFKA_SASL_MECHANISM": mechanism,
        "ALLOCATOR_KAFKA_SASL_USERNAME": USER,
        "ALLOCATOR_KAFKA_SASL_PASSWORD": password or PASSWORDS[mechanism],
    }


def librdkafka_config(certificates: Certificates, mechanism: str) -> dict[str, str]:
    """The same login for the independent client (confluent-kafka)."""
    return {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(certificates.ca_file),
        "sasl.mechanisms": mechanism,
        "sasl.username": USER,
        "sasl.password": PASSWORDS[mechanism],
    }


@contextlib.contextmanager
def tls_redis(certificates: Certificates) -> Iterator[str]:
    """A redis-server of our own that serves only TLS and wants a password;
    yields the ALLOCATOR_REDIS_URL that reaches it."""
    binary = shutil.which("redis-server")
    if binary is None:
        in_ci_or_skip("no redis-server on PATH")
    assert binary is not None
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="redis-tls-") as folder:
        # A file, not the command line: the password must not show in `ps`.
        config = Path(folder) / "redis.conf"
        config.write_text(
            f"port 0\ntls-port {port}\nbind 127.0.0.1\n"
            f"tls-cert-file {certificates.cert_file}\ntls-key-file {certificates.key_file}\n"
            f"tls-ca-cert-file {certificates.ca_file}\ntls-auth-clients no\n"
            f'requirepass {REDIS_PASSWORD}\nsave ""\nappendonly no\ndir {folder}\n'
        )
        log = Path(folder) / "redis.log"
        with log.open("wb") as out:
            process = subprocess.Popen([binary, str(config)], stdout=out, stderr=subprocess.STDOUT)
        url = f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={certificates.ca_file}"
        try:
            deadline = time.monotonic() + 15
            while True:
                if process.poll() is not None:
                    reason = log.read_text(errors="replace")[-1500:]
                    if "tls-port" in reason:  # a build without TLS rejects the directive
                        in_ci_or_skip(f"this redis-server has no TLS: {reason}")
                    raise RuntimeError(f"the TLS redis-server exited:\n{reason}")
                try:
                    client = redis_sync.Redis.from_url(url)
                    client.ping()
                    client.close()
                    break
                except redis_sync.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield url
        finally:
            stop_process(process, grace=5)


@pytest.fixture(scope="module")
def rediss_url(certificates: Certificates) -> Iterator[str]:
    with tls_redis(certificates) as url:
        yield url


def with_query(url: str, **query: str) -> str:
    return make_url(url).update_query_dict(query).render_as_string(hide_password=False)


@pytest.fixture
async def ssl_postgres_url(postgres_server: str) -> AsyncIterator[str]:
    """A fresh database on a server with TLS on, reached with ?ssl=require."""
    async with fresh_postgres(postgres_server) as url:
        async with Database(url) as db, db.engine.connect() as conn:
            if (await conn.execute(text("SHOW ssl"))).scalar() != "on":
                in_ci_or_skip("the PostgreSQL server has ssl = off")
        yield with_query(url, ssl="require")


async def connection_is_tls(database_url: str) -> bool:
    async with Database(database_url) as db, db.engine.connect() as conn:
        query = text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        return bool((await conn.execute(query)).scalar())


def allocator(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`allocator ARGS` in a process of its own, as a user runs it."""
    return subprocess.run(
        [*ALLOCATOR_COMMAND, *args], env=env, capture_output=True, text=True, timeout=120
    )


def assert_no_secret(text_: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text_, f"a password shows in {where}"


# --- Kafka ---------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_worker_allocates_over_sasl_ssl(
    mechanism: str,
    secured_kafka: str,
    certificates: Certificates,
    rediss_url: str,
    ssl_postgres_url: str,
    tmp_path: Path,
) -> None:
    """Every connection secured at once: Kafka over SASL_SSL, Redis over TLS
    with a password, PostgreSQL over TLS. `allocator topics create`, the
    loaders and a worker work from ALLOCATOR_* alone, and show no secret."""
    env = kafka_env(certificates, mechanism)
    async with running_pipeline(
        secured_kafka, ssl_postgres_url, rediss_url, tmp_path, extra_env=env
    ) as pipeline:
        pipeline.client_config = librdkafka_config(certificates, mechanism)
        settings = pipeline.settings
        created = pipeline.cli("topics", "create")
        assert created.returncode == 0, created.stderr
        assert f"{settings.topic_scored_leads}: 4 partitions" in created.stdout
        assert_no_secret(created.stdout + created.stderr, "topics create")
        assert await connection_is_tls(ssl_postgres_url)

        # At DEBUG, where aiokafka logs every request, the SASL login too.
        worker = start_worker(pipeline.env, tmp_path / "worker.log", level="debug", wait=False)
        pipeline.workers.append(worker)  # stopped with the pipeline
        worker.wait_ready()
        rows = sample_leads(40, seed=5)
        pipeline.produce_json(settings.topic_scored_leads, rows, "lead_id")
        emitted = pipeline.read_json(settings.topic_allocations, len(rows), 90)
        assert {a["event_id"] for a in emitted} >= {r["event_id"] for r in rows}
        assert any(channel["status"] == "allocated" for a in emitted for channel in a["channels"])

        # The allocator's own reader (the demo's, the DLQ tools') over SASL_SSL too.
        records = await read_topic(
            secured_kafka,
            settings.topic_allocations,
            len(rows),
            30,
            client_options=settings.kafka_client_options(),
        )
        assert len(records) >= len(rows)

        # The quota counters went to the TLS Redis.
        counted = redis_sync.Redis.from_url(rediss_url)
        try:
            assert list(counted.scan_iter(match=f"{pipeline.prefix}*", count=1000))
        finally:
            counted.close()

        health = worker.get("/health")[1].decode()
        assert json.loads(health)["live"]
        log = worker.log.read_text(errors="replace")
        assert f"SASL_SSL, {mechanism} as '{USER}'" in log  # the start line says how
        for where, shown in (("/health", health), ("/metrics", worker.metrics()), ("log", log)):
            assert_no_secret(shown, f"the worker's {where}")


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_wrong_password_is_refused_at_start(
    mechanism: str, secured_kafka: str, certificates: Certificates, tmp_path: Path
) -> None:
    """One line naming the user and the variables, at once: no retry loop, no traceback."""
    wrong = "Wrong4" + PASSWORDS[mechanism]
    env = {
        **os.environ,
        "ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS": secured_kafka,
        "ALLOCATOR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/allocator.db",
        "ALLOCATOR_REDIS_URL": "memory://",
        "ALLOCATOR_TOPIC_SCORED_LEADS": f"refused-{uuid.uuid4().hex[:8]}",
        **kafka_env(certificates, mechanism, wrong),
    }
    expected = (
        f"refused the {mechanism} login of user '{USER}': check "
        "ALLOCATOR_KAFKA_SASL_USERNAME and ALLOCATOR_KAFKA_SASL_PASSWORD"
    )

    began = time.monotonic()
    done = allocator(env, "topics", "create")
    assert done.returncode != 0
    assert expected in done.stderr.splitlines()[0], done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert wrong not in done.stdout + done.stderr
    assert time.monotonic() - began < 30

    worker = start_worker(env, tmp_path / "worker.log", level="info", wait=False)
    try:
        worker.process.wait(60)
    finally:
        worker.stop()
    log = worker.log.read_text(errors="replace")
    assert worker.process.returncode != 0, log
    assert expected in log, log
    assert "Traceback" not in log, log
    assert wrong not in log


async def test_an_untrusted_broker_certificate_is_named(
    secured_kafka: str, certificates: Certificates, tmp_path: Path
) -> None:
    """A CA file that did not sign the broker's certificate: the CA variable is named."""
    trustme = pytest.importorskip("trustme")
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    settings = Settings.from_environment(
        {
            "ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS": secured_kafka,
            **kafka_env(certificates, "PLAIN"),
            "ALLOCATOR_KAFKA_SSL_CAFILE": str(other_ca),
        }
    )
    with pytest.raises(KafkaLoginRefused, match=r"is not trusted .*ALLOCATOR_KAFKA_SSL_CAFILE"):
        await ensure_topics(settings)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_replay_reads_topics_over_sasl_ssl(
    mechanism: str,
    secured_kafka: str,
    certificates: Certificates,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`allocator replay --leads-topic` over SASL_SSL decides as the file replay does."""
    paths = write_history(tmp_path, leads=200, bad=False, pattern_time="2026-11-26T16:00:00+00:00")
    run = uuid.uuid4().hex[:8]
    leads_topic, patterns_topic = f"sec-leads-{run}", f"sec-patterns-{run}"
    config = {"bootstrap.servers": secured_kafka, **librdkafka_config(certificates, mechanism)}
    admin = AdminClient(config)
    for future in admin.create_topics(
        [NewTopic(leads_topic, 2, 1), NewTopic(patterns_topic, 1, 1)]
    ).values():
        future.result(30)
    producer = Producer(config)
    # Record times in file order, so that "input order" is the same for both.
    base_ms = int(time.time() * 1000) - 100_000
    for topic, path, key in (
        (leads_topic, paths["leads"], "lead_id"),
        (patterns_topic, paths["patterns"], "client_id"),
    ):
        for i, line in enumerate(path.read_text().splitlines()):
            producer.produce(topic, key=json.loads(line)[key], value=line, timestamp=base_ms + i)
    assert producer.flush(30) == 0

    monkeypatch.setenv("ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS", secured_kafka)
    for name, value in kafka_env(certificates, mechanism).items():
        monkeypatch.setenv(name, value)
    assert main(replay_args(paths, tmp_path / "file.jsonl")) == 0
    topic_args = [
        "replay",
        *("--leads-topic", leads_topic, "--patterns-topic", patterns_topic),
        *("--clients", str(paths["clients"]), "--resources", str(paths["resources"])),
        *("--out", str(tmp_path / "topic.jsonl"), "--quiet"),
    ]
    assert main(topic_args) == 0
    assert (tmp_path / "topic.jsonl").read_bytes() == (tmp_path / "file.jsonl").read_bytes()


async def test_the_topic_reader_names_a_refused_login(
    secured_kafka: str, certificates: Certificates
) -> None:
    """The reader the replay and the DLQ tools share refuses as `topics create` does."""
    options = Settings.from_environment(
        kafka_env(certificates, "SCRAM-SHA-512", "Wrong4alice")
    ).kafka_client_options()
    with pytest.raises(KafkaLoginRefused, match="refused the SCRAM-SHA-512 login of user 'alice'"):
        await replay_read_topic(secured_kafka, "any", None, None, client_options=options)


# --- Redis and PostgreSQL ------------------------------------------------------------


async def test_quota_store_over_rediss_with_a_password(
    rediss_url: str, certificates: Certificates
) -> None:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    day = date(2026, 11, 26)
    store = open_quota_store(rediss_url, prefix)
    try:
        assert await store.increment(Channel.EMAIL, "mail.acme.io", day) == 1
        assert await store.increment(Channel.EMAIL, "mail.acme.io", day) == 2
        assert await store.usage(Channel.EMAIL, ["mail.acme.io"], day) == [2]
    finally:
        await store.close()
    # The server really wants the password, and speaks only TLS.
    port = urlsplit(rediss_url).port
    anonymous = redis_sync.Redis(
        host="127.0.0.1",
        port=port,
        ssl=True,
        ssl_ca_certs=str(certificates.ca_file),
        socket_timeout=5,
    )
    with pytest.raises(redis_sync.AuthenticationError):
        anonymous.ping()
    anonymous.close()
    cleartext = redis_sync.Redis(
        host="127.0.0.1", port=port, password=REDIS_PASSWORD, socket_timeout=5
    )
    with pytest.raises(redis_sync.ConnectionError):
        cleartext.ping()
    cleartext.close()


async def test_loaders_over_postgres_tls(ssl_postgres_url: str, tmp_path: Path) -> None:
    """`allocator clients load` / `resources load` with ?ssl=require: the connection is TLS."""
    env = {**os.environ, "ALLOCATOR_DATABASE_URL": ssl_postgres_url}
    for table in ("clients", "resources"):
        done = allocator(env, table, "load", str(SAMPLES_DIR / f"{table}.jsonl"))
        assert done.returncode == 0, done.stderr
    assert await connection_is_tls(ssl_postgres_url)
    async with Database(ssl_postgres_url) as db:
        snapshot = await db.load_snapshot()
    assert "acme" in snapshot


async def test_postgres_server_certificate_checked_with_verify_ca(
    ssl_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """?ssl=verify-ca checks the server's certificate against PGSSLROOTCERT
    (asyncpg reads the CA from there, not from the URL)."""
    async with Database(ssl_postgres_url) as db, db.engine.connect() as conn:
        cert = Path(str((await conn.execute(text("SHOW ssl_cert_file"))).scalar()))
    if not os.access(cert, os.R_OK):
        pytest.skip(f"the server's certificate {cert} is not on this machine")
    monkeypatch.setenv("PGSSLROOTCERT", str(cert))  # Debian's snakeoil signs itself
    assert await connection_is_tls(with_query(ssl_postgres_url, ssl="verify-ca"))
