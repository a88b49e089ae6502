"""Configuration: every ALLOCATOR_* environment variable, with its default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from allocator.channels import DEFAULT_SEND_HOUR, Channel
from allocator.decision import Schedule


def masked(url: str) -> str:
    """A URL with its password replaced, for logs and pages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def _default_data_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "allocator"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALLOCATOR_", extra="ignore")

    kafka_bootstrap_servers: str = "localhost:9092"
    # redis://... for the shared counters; memory:// keeps them in the worker's
    # own memory (one worker only: the embedded demo without any Redis).
    redis_url: str = "redis://localhost:6379/0"
    database_url: str = "sqlite+aiosqlite:///./allocator.db"
    app_id: str = "allocator"

    topic_scored_leads: str = "scored-leads"
    topic_conversion_patterns: str = "conversion-patterns"
    topic_allocations: str = "lead-allocations"
    topic_dlq: str = "lead-allocations-dlq"
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
    producer_max_batch_size: int = 16384
    web_port: int = 6066
    # Where faust keeps its data folder (<app_id>-data). The worker keeps no
    # state on disk (memory store; patterns come from the database), so the
    # default is a cache folder, never the working directory.
    data_dir: Path = Field(default_factory=_default_data_dir)
    # exactly_once needs Kafka transactions, which the embedded test broker
    # (Tansu 0.6.0) does not support; see topics.md, "Delivery guarantees".
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"

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
            f"brokers {self.kafka_bootstrap_servers}; app id {self.app_id}; "
            f"topics {self.topic_scored_leads}, {self.topic_conversion_patterns} -> "
            f"{self.topic_allocations}, DLQ {self.topic_dlq}; "
            f"database {masked(self.database_url)}; redis {masked(self.redis_url)}; "
            f"quota key prefix {self.quota_key_prefix!r}; batch {self.batch_size} leads or "
            f"{self.batch_seconds}s; {self.processing_guarantee}"
        )

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
