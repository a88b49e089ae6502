"""Configuration: every ALLOCATOR_* environment variable, with its default.

The Kafka security settings also give every Kafka client its TLS and SASL
options (Settings.kafka_client_options, kafka_broker_credentials for faust),
and say in one line why a broker refused them (kafka_login_refusal).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from allocator.channels import DEFAULT_SEND_HOUR, Channel
from allocator.decision import Schedule

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
_SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS_PROTOCOLS = ("SSL", "SASL_SSL")
_PROTOCOL_VARIABLE = "ALLOCATOR_KAFKA_SECURITY_PROTOCOL"


def _invalid(reason: str) -> PydanticCustomError:
    """A settings error in our words alone (a ValueError would add "Value error, ")."""
    return PydanticCustomError("kafka_security", "{reason}", {"reason": reason})


class KafkaLoginRefused(Exception):
    """A broker answered but refused this client's TLS handshake or SASL login.
    Retrying cannot help, so it is one line naming the variables to fix."""


# How long kafka_login_refusal waits for one broker's answer.
_PROBE_SECONDS = 15.0


async def kafka_login_refusal(
    bootstrap: str, options: Mapping[str, Any]
) -> KafkaLoginRefused | None:
    """Why the brokers of `bootstrap` refuse a client made with `options`
    (Settings.kafka_client_options), or None: one accepts it, or none answers
    (an outage, not a login problem).

    For a client whose start failed: aiokafka only logs why it could not
    bootstrap and raises "Unable to bootstrap from ...", so this connects once
    more, the way it does, to get the reason itself.
    """
    from aiokafka.conn import collect_hosts, create_conn
    from aiokafka.errors import (
        KafkaConnectionError,
        SaslAuthenticationFailed,
        UnsupportedSaslMechanismError,
    )
    from aiokafka.protocol.metadata import MetadataRequest

    user = options.get("sasl_plain_username")
    mechanism = options.get("sasl_mechanism")
    protocol = options.get("security_protocol", "PLAINTEXT")
    for host, port, _ in collect_hosts(bootstrap, randomize=False):
        where = f"{host}:{port}"
        try:
            async with asyncio.timeout(_PROBE_SECONDS):
                conn = await create_conn(host, port, **options)
                try:
                    await conn.send(MetadataRequest([]))  # what aiokafka's bootstrap asks next
                finally:
                    conn.close()
        except SaslAuthenticationFailed:
            return KafkaLoginRefused(
                f"Kafka at {where} refused the {mechanism} login of user {user!r}: "
                "check ALLOCATOR_KAFKA_SASL_USERNAME and ALLOCATOR_KAFKA_SASL_PASSWORD"
            )
        except UnsupportedSaslMechanismError as exc:
            return KafkaLoginRefused(
                f"Kafka at {where} does not accept the SASL mechanism {mechanism} "
                f"({exc}): fix ALLOCATOR_KAFKA_SASL_MECHANISM"
            )
        except ssl.SSLCertVerificationError as exc:
            return KafkaLoginRefused(
                f"the TLS certificate of Kafka at {where} is not trusted "
                f"({exc.verify_message}): set ALLOCATOR_KAFKA_SSL_CAFILE to the CA that signed it"
            )
        except (ssl.SSLError, ConnectionResetError, KafkaConnectionError):
            # It accepted the connection and dropped it as the handshake began:
            # what a listener does to a client speaking another protocol (TLS to
            # a plaintext port, no SASL to a SASL one, and the reverse).
            return KafkaLoginRefused(
                f"Kafka at {where} dropped the connection as it began: does that listener "
                f"speak {protocol}? check {_PROTOCOL_VARIABLE} and the port in "
                "ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS"
            )
        except Exception:  # refused, timed out, unknown host: this one does not answer
            continue
        return None
    return None


class _SaslExchangesHidden(logging.Filter):
    """aiokafka logs every request and response at DEBUG, SASL ones too: with
    PLAIN the request is b"user\\0user\\0password". This shows those as hidden."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(map(_is_sasl_exchange, record.args)):
            record.args = tuple(
                "<SASL exchange hidden>" if _is_sasl_exchange(arg) else arg for arg in record.args
            )
        return True


def _is_sasl_exchange(value: object) -> bool:
    return type(value).__name__.startswith("SaslAuthenticate")


_SASL_FILTER = _SaslExchangesHidden()


def _hide_sasl_exchanges() -> None:
    """On the logger of aiokafka's connections (idempotent): whoever takes
    the password from Settings gets its DEBUG lines masked, the worker's
    (faust's own clients) and the commands' alike."""
    logging.getLogger("aiokafka.conn").addFilter(_SASL_FILTER)


def masked(url: str) -> str:
    """A URL with its password replaced, for logs, pages and messages (the one masker)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url  # not a URL at all, so there is no password to find in it
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def _default_data_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "allocator"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALLOCATOR_", extra="ignore")

    kafka_bootstrap_servers: str = "localhost:9092"
    # TLS and SASL towards the brokers (Confluent Cloud, MSK, a secured
    # cluster). Every Kafka client of the allocator takes them from
    # kafka_client_options() or, faust's, from kafka_broker_credentials().
    # Inconsistent values fail here, when Settings is made, naming the variable:
    # a connection would only fail later, and in the client's words.
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    # A PEM bundle of the CAs that signed the brokers' certificates; unset,
    # the system's CAs (a public cloud's brokers have publicly signed ones).
    kafka_ssl_cafile: Path | None = None
    # validate_default: a SASL protocol with one of these unset must fail even
    # though nothing was given. The password comes before the user so that
    # the user's check (the last) sees every other SASL value.
    kafka_sasl_mechanism: SaslMechanism | None = Field(default=None, validate_default=True)
    # SecretStr: printed, logged or dumped it shows as '**********'.
    kafka_sasl_password: SecretStr | None = Field(default=None, validate_default=True)
    kafka_sasl_username: str | None = Field(default=None, validate_default=True)
    # redis://... for the shared counters; memory:// keeps them in the worker's
    # own memory (one worker only: the embedded demo without any Redis).
    redis_url: str = "redis://localhost:6379/0"
    database_url: str = "sqlite+aiosqlite:///./allocator.db"
    app_id: str = "allocator"

    topic_scored_leads: str = "scored-leads"
    topic_conversion_patterns: str = "conversion-patterns"
    topic_allocations: str = "lead-allocations"
    topic_dlq: str = "lead-allocations-dlq"
    # Round 2 (CONTRACT.md section 10): the dispatchers' feedback, and what it produces.
    topic_send_events: str = "send-events"
    topic_lead_cancellations: str = "lead-cancellations"
    topic_resource_health: str = "resource-health"
    # How often a worker looks for cooldowns that ended and pauses lifted, to
    # publish them on resource-health (each claimed by one worker; published
    # again only if that worker dies before saying it published it).
    health_lapse_seconds: float = Field(default=15.0, gt=0)
    # Partitions used when the allocator creates a topic (`allocator topics create`,
    # the demo); existing topics keep theirs.
    topic_partitions: int = Field(default=4, ge=1)
    # Replicas of every topic the allocator (or faust, for internal topics) creates.
    topic_replication_factor: int = Field(default=1, ge=1)

    # Quotas and the resource cache.
    quota_key_prefix: str = ""
    quota_retention_days: int = Field(default=3, ge=1)
    resource_cache_seconds: float = Field(default=30.0, gt=0)

    # Default local send hour per channel; the defaults are written once, in
    # channels.py. Everything that decides reads them through schedule().
    send_hour_email: int = Field(default=DEFAULT_SEND_HOUR[Channel.EMAIL], ge=0, le=23)
    send_hour_linkedin: int = Field(default=DEFAULT_SEND_HOUR[Channel.LINKEDIN], ge=0, le=23)
    send_hour_voice: int = Field(default=DEFAULT_SEND_HOUR[Channel.VOICE], ge=0, le=23)
    send_hour_sms: int = Field(default=DEFAULT_SEND_HOUR[Channel.SMS], ge=0, le=23)
    send_hour_direct_mail: int = Field(default=DEFAULT_SEND_HOUR[Channel.DIRECT_MAIL], ge=0, le=23)

    # Stream batching: up to batch_size leads or batch_seconds, whichever first.
    batch_size: int = Field(default=500, ge=1)
    batch_seconds: float = Field(default=0.05, gt=0)

    # Broker client settings; faust's production defaults unless set. The test
    # broker wants short ones (rebalance 5, session 6, heartbeat 1).
    broker_rebalance_timeout: float = 60.0
    broker_session_timeout: float = 60.0
    broker_heartbeat_interval: float = 3.0
    broker_commit_interval: float = 2.8
    # How long a consumer's fetch may wait for data (faust hard-codes 1500;
    # streams/faust_adapt.py). Kafka answers as soon as data arrives; the
    # embedded broker only when the wait runs out, so this bounds its latency.
    consumer_fetch_max_wait_ms: int = Field(default=100, ge=1, le=60_000)
    producer_acks: int = -1
    producer_linger_ms: int = 5
    # Bytes of one partition's batch. aiokafka has one batch of a partition
    # on its way at a time, and at its (and faust's) 16384 a batch holds ~20
    # allocations (~790 bytes each; a forwarded lead is ~135): a worker's
    # 500 took a queue of broker round trips per partition. On Kafka, one
    # round each: 0.77 of a bare forwarding agent's rate at 16384, 0.97 at
    # 262144 (bench/stream_bench.py). Half of Kafka's default
    # message.max.bytes (1048588): a batch must stay under the broker's and
    # the topic's (max.message.bytes) limit, or the broker refuses it.
    producer_max_batch_size: int = 524_288
    web_port: int = 6066
    # Where faust keeps its data folder (<app_id>-data). The worker keeps no
    # state on disk (memory store; patterns come from the database), so the
    # default is a cache folder, never the working directory.
    data_dir: Path = Field(default_factory=_default_data_dir)
    # exactly_once needs Kafka transactions, which the embedded test broker
    # (Tansu 0.6.0) does not support; see topics.md, "Delivery guarantees".
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    # The input topics' producers use Kafka transactions: every transaction
    # leaves its marker at one offset, which an at_least_once worker then
    # takes as such. Left false, it reads the partition again from each
    # marker, twice, before it accepts it (streams/offsets.py).
    transactional_inputs: bool = False

    @field_validator(
        "kafka_ssl_cafile",
        "kafka_sasl_mechanism",
        "kafka_sasl_password",
        "kafka_sasl_username",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `ALLOCATOR_KAFKA_SSL_CAFILE=` in a compose file or a shell means unset,
        # not a file named "" (or Path("."), which is not a CA bundle).
        return None if value == "" else value

    @field_validator("kafka_ssl_cafile")
    @classmethod
    def _usable_cafile(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        protocol = info.data.get("kafka_security_protocol", "PLAINTEXT")
        if protocol not in _TLS_PROTOCOLS:
            # Ignoring it would let someone believe the connection is encrypted.
            raise _invalid(
                f"a CA file is for TLS, but {_PROTOCOL_VARIABLE} is {protocol}: "
                "set it to SSL or SASL_SSL, or unset ALLOCATOR_KAFKA_SSL_CAFILE"
            )
        if not path.is_file():
            raise _invalid(f"ALLOCATOR_KAFKA_SSL_CAFILE: there is no file {path}")
        try:
            ssl.create_default_context(cafile=str(path))
        except (ssl.SSLError, OSError) as exc:
            raise _invalid(
                f"ALLOCATOR_KAFKA_SSL_CAFILE: {path} is not a readable PEM CA bundle "
                f"({exc.strerror or exc})"
            ) from None
        return path

    @field_validator("kafka_sasl_mechanism", "kafka_sasl_password")
    @classmethod
    def _needed_by_sasl(cls, value: Any, info: ValidationInfo) -> Any:
        # Only a missing value fails here: an error about a given password
        # would carry the password into the message (pydantic shows the input).
        protocol = info.data.get("kafka_security_protocol", "PLAINTEXT")
        if protocol in _SASL_PROTOCOLS and value is None:
            what = {
                "kafka_sasl_mechanism": "a mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)",
                "kafka_sasl_password": "a password",
            }[str(info.field_name)]
            raise _invalid(
                f"{_PROTOCOL_VARIABLE}={protocol} needs {what} in "
                f"ALLOCATOR_{str(info.field_name).upper()}"
            )
        return value

    @field_validator("kafka_sasl_username")
    @classmethod
    def _sasl_complete(cls, username: str | None, info: ValidationInfo) -> str | None:
        protocol = info.data.get("kafka_security_protocol", "PLAINTEXT")
        if protocol in _SASL_PROTOCOLS:
            if username is None:
                raise _invalid(
                    f"{_PROTOCOL_VARIABLE}={protocol} needs a user in ALLOCATOR_KAFKA_SASL_USERNAME"
                )
            return username
        given = [
            name
            for name, value in (
                ("MECHANISM", info.data.get("kafka_sasl_mechanism")),
                ("PASSWORD", info.data.get("kafka_sasl_password")),
                ("USERNAME", username),
            )
            if value is not None
        ]
        if given:
            # A login that is never sent: say so rather than connect without it.
            names = "/".join(given)
            raise _invalid(
                f"ALLOCATOR_KAFKA_SASL_{names} given, but {_PROTOCOL_VARIABLE}={protocol} "
                "logs in without SASL: set it to SASL_SSL (or SASL_PLAINTEXT), or unset them"
            )
        return username

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Settings:
        """Settings from an explicit mapping of ALLOCATOR_* variables (for child processes)."""
        prefix = "ALLOCATOR_"
        values: dict[str, Any] = {
            k[len(prefix) :].lower(): v for k, v in environment.items() if k.startswith(prefix)
        }
        return cls.model_validate(values)

    def described(self) -> str:
        """What a worker says about itself at start: where it connects, secrets masked."""
        return (
            f"brokers {self.kafka_bootstrap_servers} ({self.kafka_security_described()}); "
            f"app id {self.app_id}; "
            f"topics {self.topic_scored_leads}, {self.topic_conversion_patterns}, "
            f"{self.topic_send_events} -> {self.topic_allocations}, "
            f"{self.topic_lead_cancellations}, {self.topic_resource_health}, "
            f"DLQ {self.topic_dlq}; "
            f"database {masked(self.database_url)}; redis {masked(self.redis_url)}; "
            f"quota key prefix {self.quota_key_prefix!r}; batch {self.batch_size} leads or "
            f"{self.batch_seconds}s; {self.processing_guarantee}"
        )

    def kafka_security_described(self) -> str:
        """The security in use, for the start line: the user, never the password."""
        parts: list[str] = [self.kafka_security_protocol]
        if self.kafka_security_protocol in _SASL_PROTOCOLS:
            parts.append(f"{self.kafka_sasl_mechanism} as {self.kafka_sasl_username!r}")
        if self.kafka_security_protocol in _TLS_PROTOCOLS:
            parts.append(f"CA {self.kafka_ssl_cafile or 'system'}")
        return ", ".join(parts)

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """A TLS client context trusting ALLOCATOR_KAFKA_SSL_CAFILE (else the
        system's CAs) and checking the broker's host name; None without TLS."""
        if self.kafka_security_protocol not in _TLS_PROTOCOLS:
            return None
        from aiokafka.helpers import create_ssl_context  # the core imports no client at load

        context: ssl.SSLContext = create_ssl_context(cafile=self.kafka_ssl_cafile)
        return context

    def kafka_client_options(self) -> dict[str, Any]:
        """Keyword arguments of every aiokafka client (admin, consumer, producer)
        the allocator makes besides faust's. Holds the password: never log it."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        context = self.kafka_ssl_context()
        if context is not None:
            options["ssl_context"] = context
        if self.kafka_security_protocol in _SASL_PROTOCOLS:
            assert self.kafka_sasl_password is not None  # the validators saw to it
            _hide_sasl_exchanges()
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        return options

    def kafka_broker_credentials(self) -> CredentialsT | None:
        """faust's `broker_credentials` for the same settings; None for PLAINTEXT.

        faust derives the protocol from the credentials: SASLCredentials is
        SASL_SSL when it has a TLS context and SASL_PLAINTEXT without one."""
        import faust  # the worker's, imported only when it asks

        context = self.kafka_ssl_context()
        if self.kafka_security_protocol in _SASL_PROTOCOLS:
            assert self.kafka_sasl_password is not None
            _hide_sasl_exchanges()
            return faust.SASLCredentials(
                username=self.kafka_sasl_username,
                password=self.kafka_sasl_password.get_secret_value(),
                ssl_context=context,
                mechanism=self.kafka_sasl_mechanism,
            )
        if context is not None:
            return faust.SSLCredentials(context)
        return None

    def schedule(self) -> Schedule:
        """The configured default send hours: the worker's, and a replay's baseline."""
        return Schedule(
            {
                Channel.EMAIL: self.send_hour_email,
                Channel.LINKEDIN: self.send_hour_linkedin,
                Channel.VOICE: self.send_hour_voice,
                Channel.SMS: self.send_hour_sms,
                Channel.DIRECT_MAIL: self.send_hour_direct_mail,
            }
        )
