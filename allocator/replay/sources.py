"""Where a replay's history comes from (JSON Lines files or a Kafka topic), and
the event-time order in which it is replayed: scored leads, conversion
patterns and send-events (CONTRACT.md section 12).

Invalid records are kept as `Rejected` (where, field, value) and never stop
the replay or drop a valid one. Send-events keep where each was read
(`Origin`), because one may turn out bad only when it is applied: naming a
send that was not reserved (unknown_send).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from allocator.config import kafka_login_refusal
from allocator.errors import InvalidRecord
from allocator.files import parse_lines
from allocator.frozen import fast_init
from allocator.models import (
    ConversionPattern,
    ScoredLead,
    SendEvent,
    decode_object,
    parse_pattern_data,
    validate,
)
from allocator.models.feedback import check_kind_fields
from allocator.running import run_to_end

T = TypeVar("T")


@dataclass(frozen=True)
class Rejected:
    source: str  # file path or topic
    where: str  # "line 12" or "partition 0 offset 81"
    error: InvalidRecord

    def describe(self) -> str:
        return f"{self.source} {self.where}: [{self.error.code}] {self.error.message}"


@fast_init
@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record was read: its file and line, or its topic and position."""

    source: str  # file path or topic
    where: str  # "line 12" or "partition 0 offset 81"


Event = ScoredLead | ConversionPattern | SendEvent


@dataclass
class History:
    leads: list[ScoredLead]  # in input order
    patterns: list[ConversionPattern]
    rejected: list[Rejected]
    send_events: list[SendEvent] = field(default_factory=list)  # in input order
    origins: list[Origin] = field(default_factory=list)  # where each send-event was read

    def origin(self, index: int) -> Origin:
        """Where send-event `index` was read (a history built in code may not say)."""
        if index < len(self.origins):
            return self.origins[index]
        return Origin("send-events", f"event {self.send_events[index].event_id}")

    def in_event_time(self) -> list[tuple[int, Event]]:
        """Leads, patterns and send-events merged by event time (scored_at,
        updated_at, occurred_at), each with its index in its own list.

        Among equal times a pattern comes first, because it applies to leads
        scored at or after its updated_at; then send-events, because what one
        does holds from its occurred_at on (a stop suppresses a lead scored at
        that instant, a cooling starts then); then leads; input order within
        each kind.
        """
        # Without the event in the tuple no key function is needed (events do
        # not compare), and one took 0.6 s of 200,000 leads; no two (time,
        # kind, index) are equal, so the order is the same.
        keyed: list[tuple[datetime, int, int]] = [
            (p.updated_at, 0, i) for i, p in enumerate(self.patterns)
        ]
        keyed += [(e.occurred_at, 1, i) for i, e in enumerate(self.send_events)]
        keyed += [(lead.scored_at, 2, i) for i, lead in enumerate(self.leads)]
        keyed.sort()
        kinds: tuple[list[ConversionPattern], list[SendEvent], list[ScoredLead]] = (
            self.patterns,
            self.send_events,
            self.leads,
        )
        return [(index, kinds[kind][index]) for _, kind, index in keyed]


def parse_lead_data(data: dict[str, Any]) -> ScoredLead:
    return validate(ScoredLead, data)


def parse_send_event_data(data: dict[str, Any]) -> SendEvent:
    """A send-event with the fields its kind requires (as models.parse_send_event)."""
    return check_kind_fields(validate(SendEvent, data))


def from_file(
    path: str | Path, parse: Callable[[dict[str, Any]], T]
) -> tuple[list[T], list[Rejected]]:
    """The file's valid records and its bad lines."""
    good, _, bad = _read_file(path, parse, located=False)
    return good, bad


def located_from_file(
    path: str | Path, parse: Callable[[dict[str, Any]], T]
) -> tuple[list[T], list[Origin], list[Rejected]]:
    """The file's valid records, the line each was read from, and its bad lines."""
    return _read_file(path, parse, located=True)


def _read_file(
    path: str | Path, parse: Callable[[dict[str, Any]], T], located: bool
) -> tuple[list[T], list[Origin], list[Rejected]]:
    # Where each valid record was read only when asked (`located`): a lead
    # file's 200,000 origins cost a microsecond a lead and were never read.
    source = str(path)
    good: list[T] = []
    origins: list[Origin] = []
    bad: list[Rejected] = []
    for number, item in parse_lines(path, parse):
        if isinstance(item, InvalidRecord):
            bad.append(Rejected(source, f"line {number}", item))
        else:
            good.append(item)
            if located:
                origins.append(Origin(source, f"line {number}"))
    return good, origins, bad


@dataclass(frozen=True)
class Bound:
    """--from / --to: an RFC 3339 timestamp (record time) or an offset."""

    at: datetime | None = None
    offset: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> Bound | None:
        """The bound `text` gives, or ValueError saying what is wrong with it."""
        if text is None:
            return None
        if text.isascii() and text.isdigit():  # isdigit() alone passes '²', which int() rejects
            return cls(offset=int(text))
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("neither an offset nor an RFC 3339 time") from None
        if at.tzinfo is None:
            raise ValueError("the time has no UTC offset")
        return cls(at=at)


RawRecord = tuple[int, int, int, bytes | None]  # partition, offset, timestamp ms, value

# aiokafka client options: TLS and SASL (Settings.kafka_client_options(); the
# callers have the Settings). None or {}: plaintext, as the defaults.
ClientOptions = Mapping[str, Any] | None


async def topic_partitions(
    bootstrap: str, topic: str, client_options: ClientOptions = None
) -> list[int]:
    """The topic's partitions, asked of the cluster. (A consumer without a group
    or a subscription knows no topic's metadata on Kafka, and naming the topic
    in a metadata request could auto-create it, so all topics are listed.)

    The first connection of every topic reader here and in streams.local: a
    refused TLS handshake or SASL login raises config.KafkaLoginRefused, one
    line naming the variables."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaConnectionError

    options = dict(client_options or {})
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options)
    try:
        await admin.start()
    except KafkaConnectionError:
        refusal = await kafka_login_refusal(bootstrap, options)
        await admin.close()
        if refusal is not None:
            raise refusal from None
        raise
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    return sorted(
        part["partition"]
        for found in described
        if found["topic"] == topic and found["error_code"] == 0
        for part in found["partitions"]
    )


async def read_topic(
    bootstrap: str,
    topic: str,
    start: Bound | None,
    end: Bound | None,
    idle_ms: int = 30_000,
    *,
    client_options: ClientOptions = None,
) -> list[RawRecord]:
    """Records of `topic` between the bounds, read without a consumer group and
    without committing anything. Ordered by (timestamp, partition, offset).

    A partition ends at its end offset as reported when reading starts (so a
    topic that keeps being written to still ends), or at an end bound given
    as an offset; an end in time filters records, never ends a partition
    (record times need not grow with offsets). Tansu 0.6 under-reports end
    offsets by up to a batch, but a fetch returns whole batches, so the records
    up to the true end of what was there arrive with the one that reaches the
    reported end. A slow fetch on a busy machine is no end; if no partition
    yields anything for `idle_ms` while some are short of their ends, that
    is an error (ValueError, naming them), never a history that silently
    lacks its last records.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    partitions = await topic_partitions(bootstrap, topic, client_options)
    if not partitions:
        raise ValueError(f"topic {topic!r} does not exist or has no partitions")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **(client_options or {}),
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await _seek_start(consumer, tps, start)
        ends = await consumer.end_offsets(tps)
        records: list[RawRecord] = []
        done: set[int] = set()
        quiet_since = time.monotonic()
        while True:
            for tp in tps:
                # At or past the end it had when reading began: its records
                # read, or (Kafka) what is left a transaction's markers, which
                # no consumer is given.
                if tp.partition not in done and await consumer.position(tp) >= ends[tp]:
                    done.add(tp.partition)
            if len(done) == len(tps):
                break
            batch = await consumer.getmany(
                *[tp for tp in tps if tp.partition not in done], timeout_ms=1000
            )
            if not batch:
                if time.monotonic() - quiet_since > idle_ms / 1000:
                    break
                continue
            quiet_since = time.monotonic()
            for tp, messages in batch.items():
                for m in messages:
                    if _past(end, m.offset, m.timestamp):
                        assert end is not None
                        if end.offset is not None:  # offsets grow: the rest is past too
                            done.add(tp.partition)
                            break
                        # An end in time does not end the partition: record
                        # times are the producers' and need not grow with
                        # offsets (a producer sets them; a batch retried
                        # after a newer one lands after it, the suspected
                        # cause of windows that lacked records on a busy Kafka).
                        continue
                    # The seek is only a head start: Tansu 0.6 answers a
                    # time lookup with the partition's start.
                    if not _before(start, m.offset, m.timestamp):
                        records.append((tp.partition, m.offset, m.timestamp, m.value))
        short = [
            f"partition {tp.partition} at offset {await consumer.position(tp)} of {ends[tp]}"
            for tp in tps
            if tp.partition not in done
        ]
        if short:
            raise ValueError(
                f"topic {topic!r}: nothing more came for {idle_ms / 1000:g} s before the "
                f"end of {', '.join(short)}; the history would lack those records"
            )
        records.sort(key=lambda r: (r[2], r[0], r[1]))
        return records
    finally:
        await consumer.stop()


async def _seek_start(consumer: Any, tps: list[Any], start: Bound | None) -> None:
    if start is None:
        await consumer.seek_to_beginning(*tps)
    elif start.offset is not None:
        for tp in tps:
            consumer.seek(tp, start.offset)
    else:
        assert start.at is not None
        found = await consumer.offsets_for_times(
            {tp: int(start.at.timestamp() * 1000) for tp in tps}
        )
        for tp in tps:
            # No answer reads the partition from its start, never from its
            # end: the lookup is only a head start (records before the bound
            # are passed over as they come), and a partition wrongly taken
            # as having nothing from the bound on would lose its window.
            at = found.get(tp)
            if at is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, at.offset)


def _before(start: Bound | None, offset: int, timestamp_ms: int) -> bool:
    if start is None:
        return False
    if start.offset is not None:
        return offset < start.offset
    assert start.at is not None
    return timestamp_ms < int(start.at.timestamp() * 1000)


def _past(end: Bound | None, offset: int, timestamp_ms: int) -> bool:
    if end is None:
        return False
    if end.offset is not None:
        return offset >= end.offset
    assert end.at is not None
    return timestamp_ms >= int(end.at.timestamp() * 1000)


def parse_records(
    topic: str, records: Iterable[RawRecord], parse: Callable[[dict[str, Any]], T]
) -> tuple[list[T], list[Rejected]]:
    good, _, bad = located_records(topic, records, parse)
    return good, bad


def located_records(
    topic: str, records: Iterable[RawRecord], parse: Callable[[dict[str, Any]], T]
) -> tuple[list[T], list[Origin], list[Rejected]]:
    """The valid records, the position each was read from, and the bad ones."""
    good: list[T] = []
    origins: list[Origin] = []
    bad: list[Rejected] = []
    for partition, offset, _, value in records:
        where = f"partition {partition} offset {offset}"
        try:
            good.append(parse(decode_object(value)))
        except InvalidRecord as err:
            bad.append(Rejected(topic, where, err))
        else:
            origins.append(Origin(topic, where))
    return good, origins, bad


def topic_history(
    bootstrap: str,
    leads_topic: str | None,
    patterns_topic: str | None,
    start: Bound | None,
    end: Bound | None,
    client_options: ClientOptions = None,
    send_events_topic: str | None = None,
) -> History:
    """The history the topics hold: leads and send-events between the bounds,
    patterns from the start of their topic up to the end bound."""

    async def read_all() -> tuple[list[RawRecord], list[RawRecord], list[RawRecord]]:
        leads: list[RawRecord] = []
        patterns: list[RawRecord] = []
        sends: list[RawRecord] = []
        if leads_topic:
            leads = await read_topic(
                bootstrap, leads_topic, start, end, client_options=client_options
            )
        if patterns_topic:
            # Patterns from before the window still held during it: read from the start.
            patterns = await read_topic(
                bootstrap, patterns_topic, None, end, client_options=client_options
            )
        if send_events_topic:
            # Bounded as the leads: a send-event before the window names a send
            # this replay never reserved.
            sends = await read_topic(
                bootstrap, send_events_topic, start, end, client_options=client_options
            )
        return leads, patterns, sends

    raw_leads, raw_patterns, raw_sends = run_to_end(read_all())
    leads, bad_leads = parse_records(leads_topic or "", raw_leads, parse_lead_data)
    patterns, bad_patterns = parse_records(patterns_topic or "", raw_patterns, parse_pattern_data)
    sends, origins, bad_sends = located_records(
        send_events_topic or "", raw_sends, parse_send_event_data
    )
    return History(leads, patterns, bad_leads + bad_patterns + bad_sends, sends, origins)
