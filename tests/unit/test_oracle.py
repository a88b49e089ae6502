"""The test oracle (tests/oracle.py): hand-computed cases, then agreement with production.

Calendar facts used below, 2026: Thanksgiving is Thu 26 November, so Fri 27
November and Mon 30 November bracket a weekend. US DST: spring-forward Sun 8
March at 02:00 EST (-05:00) -> 03:00 EDT (-04:00); fall-back Sun 1 November at
02:00 EDT -> 01:00 EST, so 01:00-01:59 happens twice. Lord Howe goes from
+10:30 to +11:00 at 02:00 local on Sun 4 October; Chatham from +12:45 to
+13:45 at 02:45 local on Sun 27 September. Asia/Tokyo is +09:00 all year.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from allocator.channels import DEFAULT_SEND_HOUR, Channel
from allocator.decision import Schedule, channel_sequence, plan_lead
from allocator.directory import build_setup
from allocator.models import ScoredLead, derived_id
from allocator.patterns import PatternSet
from allocator.tiers import tier_for_score
from allocator.timing import DEFAULT_WINDOWS, plan_sends
from tests import oracle
from tests.factories import client, how, resource, when
from tests.oracle import When

NY = "America/New_York"
Slots = list[tuple[datetime, date]]


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def d(text: str) -> date:
    return date.fromisoformat(text)


# --- hand-computed: words and sequences -------------------------------------


def test_tiers_at_every_boundary() -> None:
    expected = {
        0: "unqualified",
        19: "unqualified",
        20: "cold",
        34: "cold",
        35: "cool",
        59: "cool",
        60: "warm",
        84: "warm",
        85: "hot",
        100: "hot",
    }
    assert {score: oracle.tier_of(score) for score in expected} == expected


def test_default_sequences() -> None:
    assert oracle.default_sequence("unqualified") == []
    assert oracle.default_sequence("cold") == ["email"]
    assert oracle.default_sequence("warm") == ["email", "linkedin", "voice"]
    assert oracle.default_sequence("hot") == ["email", "linkedin", "voice", "sms", "direct_mail"]


def test_how_pattern_filtered_to_tier_and_needs_confidence_above_0_6() -> None:
    order = ["sms", "linkedin", "voice", "email"]
    assert oracle.sequence_for("cool", order, 0.9) == (["linkedin", "email"], "pattern")
    assert oracle.sequence_for("hot", order, 0.61) == (order, "pattern")
    assert oracle.sequence_for("hot", order, 0.6) == (oracle.default_sequence("hot"), "default")
    assert oracle.sequence_for("cold", ["sms", "voice"], 1.0) == (["email"], "default")
    assert oracle.sequence_for("unqualified", order, 1.0) == ([], "default")


def test_allocation_id_is_the_uuid5_of_the_event() -> None:
    # uuid5(6f1c2a9e-41d8-4a5e-9a53-0c7f1e2b8d44, "10:allocation10:demo-00001")
    assert oracle.allocation_id("demo-00001") == "126e95f7-9497-5806-894e-40c366857bc3"
    assert oracle.allocation_id("demo-00001") != oracle.allocation_id("demo-00002")


# --- hand-computed: DST ------------------------------------------------------


def test_spring_forward_02_00_is_03_00_summer_time() -> None:
    # 02:00 EST would be 07:00Z; the clock jumps 01:59:59 EST -> 03:00 EDT = 07:00Z.
    assert oracle.local_instant(d("2026-03-08"), 2, NY) == t("2026-03-08T07:00:00+00:00")
    # Lord Howe: 02:00 +10:30 (15:30Z the day before) jumps to 02:30 +11:00, the same instant.
    assert oracle.local_instant(d("2026-10-04"), 2, "Australia/Lord_Howe") == t(
        "2026-10-03T15:30:00+00:00"
    )
    # Chatham: 03:00 falls in 02:45 -> 03:45; 02:45 +12:45 = 14:00Z the day before.
    assert oracle.local_instant(d("2026-09-27"), 3, "Pacific/Chatham") == t(
        "2026-09-26T14:00:00+00:00"
    )
    assert oracle.local_instant(d("2026-09-27"), 2, "Pacific/Chatham") == t(
        "2026-09-26T13:15:00+00:00"
    )


def test_fall_back_repeated_hour_is_its_first_occurrence() -> None:
    # 01:00 EDT (-04:00) = 05:00Z, not 01:00 EST = 06:00Z.
    assert oracle.local_instant(d("2026-11-01"), 1, NY) == t("2026-11-01T05:00:00+00:00")
    assert oracle.local_instant(d("2026-11-01"), 2, NY) == t("2026-11-01T07:00:00+00:00")


def test_lead_on_spring_forward_day_with_a_02_00_pattern() -> None:
    sunday_2am = When(day=6, hour=2, confidence=0.9)
    # Scored Sat 7 March noon EST: Sunday 02:00 -> 03:00 EDT = 07:00Z; deferrals are
    # Mon 9 and Tue 10 March 02:00 EDT = 06:00Z.
    slots = oracle.send_slots(t("2026-03-07T12:00:00-05:00"), "email", NY, NY, sunday_2am, 2)
    assert slots == [
        (t("2026-03-08T07:00:00+00:00"), d("2026-03-08")),
        (t("2026-03-09T06:00:00+00:00"), d("2026-03-09")),
        (t("2026-03-10T06:00:00+00:00"), d("2026-03-10")),
    ]
    # Scored at 01:59 EST on the day: the moved slot (07:00Z) is still ahead.
    first = oracle.send_slots(t("2026-03-08T01:59:00-05:00"), "email", NY, NY, sunday_2am, 0)
    assert first == [(t("2026-03-08T07:00:00+00:00"), d("2026-03-08"))]
    # Scored exactly at 03:00 EDT: strictly after, so a week later (02:00 EDT = 06:00Z).
    later = oracle.send_slots(t("2026-03-08T03:00:00-04:00"), "email", NY, NY, sunday_2am, 0)
    assert later == [(t("2026-03-15T06:00:00+00:00"), d("2026-03-15"))]


def test_fall_back_day_patterns() -> None:
    sunday_1am = When(day=6, hour=1, confidence=0.9)
    # Scored Sat 31 Oct noon EDT: Sun 1 Nov 01:00 first occurrence (EDT) = 05:00Z.
    # Deferral: Mon 2 Nov 01:00 EST = 06:00Z.
    slots = oracle.send_slots(
        t("2026-10-31T12:00:00-04:00"), "sms", NY, NY, sunday_1am, 1, quiet_hours=False
    )
    assert slots == [
        (t("2026-11-01T05:00:00+00:00"), d("2026-11-01")),
        (t("2026-11-02T06:00:00+00:00"), d("2026-11-02")),
    ]
    # Scored 01:30 EDT (05:30Z), between the two 01:00s: the second one (06:00Z) is not
    # an occurrence; the next is Sun 8 Nov 01:00 EST = 06:00Z.
    after = oracle.send_slots(
        t("2026-11-01T05:30:00+00:00"), "sms", NY, NY, sunday_1am, 0, quiet_hours=False
    )
    assert after == [(t("2026-11-08T06:00:00+00:00"), d("2026-11-08"))]
    # A Saturday 01:00 pattern deferred one day lands on the repeated hour: first one.
    saturday_1am = When(day=5, hour=1, confidence=0.9)
    deferred = oracle.send_slots(
        t("2026-10-30T12:00:00-04:00"), "sms", NY, NY, saturday_1am, 1, quiet_hours=False
    )
    assert deferred == [
        (t("2026-10-31T05:00:00+00:00"), d("2026-10-31")),
        (t("2026-11-01T05:00:00+00:00"), d("2026-11-01")),
    ]


# --- hand-computed: schedules -------------------------------------------------


def test_friday_evening_lead_in_new_york_waits_for_monday() -> None:
    # Fri 27 Nov 18:30 EST: email 09:00 and linkedin 10:00 next weekday = Mon 30 Nov
    # (EST, -05:00: 14:00Z and 15:00Z); deferrals Tue, Wed, Thu.
    friday_evening = t("2026-11-27T18:30:00-05:00")
    assert oracle.send_slots(friday_evening, "email", NY, NY, None, 3) == [
        (t("2026-11-30T14:00:00+00:00"), d("2026-11-30")),
        (t("2026-12-01T14:00:00+00:00"), d("2026-12-01")),
        (t("2026-12-02T14:00:00+00:00"), d("2026-12-02")),
        (t("2026-12-03T14:00:00+00:00"), d("2026-12-03")),
    ]
    assert oracle.send_slots(friday_evening, "linkedin", NY, NY, None, 0) == [
        (t("2026-11-30T15:00:00+00:00"), d("2026-11-30")),
    ]
    # In UTC that evening is already Saturday 23:30Z; a UTC client would also get Monday.
    assert oracle.send_slots(friday_evening, "email", "UTC", "UTC", None, 0) == [
        (t("2026-11-30T09:00:00+00:00"), d("2026-11-30")),
    ]


def test_tokyo_lead_of_a_new_york_client() -> None:
    # Mon 23 Nov 20:00Z = Tue 24 Nov 05:00 JST = Mon 15:00 EST. Email at 09:00 JST:
    # Tue 24 Nov 09:00 JST = 00:00Z, which is still Mon 23 Nov (19:00 EST) in New York.
    slots = oracle.send_slots(t("2026-11-23T20:00:00+00:00"), "email", "Asia/Tokyo", NY, None, 2)
    assert slots == [
        (t("2026-11-24T00:00:00+00:00"), d("2026-11-23")),
        (t("2026-11-25T00:00:00+00:00"), d("2026-11-24")),
        (t("2026-11-26T00:00:00+00:00"), d("2026-11-25")),
    ]
    # Fri 27 Nov 12:00 JST exactly (03:00Z): sms at 12:00 is not strictly after, so
    # Mon 30 Nov 12:00 JST = 03:00Z, which is Sun 29 Nov 22:00 EST: Sunday's quota.
    sms = oracle.send_slots(t("2026-11-27T03:00:00+00:00"), "sms", "Asia/Tokyo", NY, None, 0)
    assert sms == [(t("2026-11-30T03:00:00+00:00"), d("2026-11-29"))]


def test_when_pattern_on_todays_weekday_with_the_hour_passed() -> None:
    # Wed 25 Nov 2026, 15:00Z; pattern Wednesday (2).
    wednesday = t("2026-11-25T15:00:00+00:00")
    passed = When(day=2, hour=14, confidence=0.9)
    ahead = When(day=2, hour=16, confidence=0.9)
    assert oracle.send_slots(wednesday, "voice", "UTC", "UTC", passed, 0) == [
        (t("2026-12-02T14:00:00+00:00"), d("2026-12-02")),
    ]
    assert oracle.send_slots(wednesday, "voice", "UTC", "UTC", ahead, 0) == [
        (t("2026-11-25T16:00:00+00:00"), d("2026-11-25")),
    ]
    # Exactly at the hour is not after it: a week later.
    at_hour = When(day=2, hour=15, confidence=0.9)
    assert oracle.send_slots(wednesday, "voice", "UTC", "UTC", at_hour, 0) == [
        (t("2026-12-02T15:00:00+00:00"), d("2026-12-02")),
    ]
    # Confidence 0.6 is not usable: default voice 11:00, next weekday = Thu 26 Nov.
    weak = When(day=2, hour=14, confidence=0.6)
    assert oracle.send_slots(wednesday, "voice", "UTC", "UTC", weak, 0) == [
        (t("2026-11-26T11:00:00+00:00"), d("2026-11-26")),
    ]


def test_deferral_from_friday_to_monday_is_one_step() -> None:
    # Thu 26 Nov 10:00Z: email 09:00 next weekday = Fri 27 Nov; one step = Mon 30 Nov.
    thursday = t("2026-11-26T10:00:00+00:00")
    assert oracle.send_slots(thursday, "email", "UTC", "UTC", None, 1) == [
        (t("2026-11-27T09:00:00+00:00"), d("2026-11-27")),
        (t("2026-11-30T09:00:00+00:00"), d("2026-11-30")),
    ]
    # max_defer_days 0: the first slot only.
    assert len(oracle.send_slots(thursday, "email", "UTC", "UTC", None, 0)) == 1
    # With a Friday 09:00 pattern a deferral is the next calendar day: Saturday.
    friday_9 = When(day=4, hour=9, confidence=0.9)
    assert oracle.send_slots(thursday, "email", "UTC", "UTC", friday_9, 1) == [
        (t("2026-11-27T09:00:00+00:00"), d("2026-11-27")),
        (t("2026-11-28T09:00:00+00:00"), d("2026-11-28")),
    ]


# --- agreement with production on random inputs -------------------------------

ZONES = [
    "America/New_York",
    "Europe/Berlin",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "UTC",
    "Europe/London",
    "America/St_Johns",
    "Asia/Kathmandu",
]


def _transitions() -> list[datetime]:
    """Every DST change of ZONES in 2025-2027, to the hour (UTC)."""
    found = []
    for name in ZONES:
        tz = ZoneInfo(name)
        instant = datetime(2025, 1, 1, tzinfo=UTC)
        before = instant.astimezone(tz).utcoffset()
        while instant.year < 2028:
            instant += timedelta(hours=1)
            now = instant.astimezone(tz).utcoffset()
            if now != before:
                found.append(instant)
            before = now
    return sorted(found)


TRANSITIONS = _transitions()

uniform_instants = st.datetimes(
    min_value=datetime(2025, 1, 1),
    max_value=datetime(2027, 12, 31, 23, 59),
    timezones=st.just(UTC),
)
near_transition = st.builds(
    lambda at, minutes: at + timedelta(minutes=minutes),
    st.sampled_from(TRANSITIONS),
    st.integers(-4 * 24 * 60, 4 * 24 * 60),
)
# A reference exactly on (or a second around) a local hour, so "strictly after" matters.
on_the_hour = st.builds(
    lambda day, hour, zone, nudge: oracle.local_instant(day, hour, zone) + timedelta(seconds=nudge),
    st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
    st.integers(0, 23),
    st.sampled_from(ZONES),
    st.sampled_from([-1, 0, 0, 1]),
)
# Shown with any quarter-hour offset, as an RFC 3339 timestamp may be.
references = st.builds(
    lambda at, quarters: at.astimezone(timezone(timedelta(minutes=15 * quarters))),
    st.one_of(uniform_instants, near_transition, on_the_hour),
    st.integers(-47, 55),
)
confidences = st.one_of(st.sampled_from([0.0, 0.6, 0.6000000001, 0.61, 1.0]), st.floats(0, 1))
when_values = st.builds(When, st.integers(0, 6), st.integers(0, 23), confidences)
when_patterns = st.one_of(st.none(), when_values)
channels = st.sampled_from(oracle.CHANNELS)
zones = st.sampled_from(ZONES)
defer_days = st.one_of(st.integers(0, 4), st.integers(0, 30))


def production_slots(
    reference: datetime,
    channel: str,
    send_zone: str,
    client_zone: str,
    pattern: When | None,
    defer: int,
) -> Slots:
    held = PatternSet()
    if pattern is not None:
        held = PatternSet(
            when={Channel(channel): when(channel, pattern.day, pattern.hour, pattern.confidence)}
        )
    slots = plan_sends(
        reference,
        DEFAULT_SEND_HOUR[Channel(channel)],
        ZoneInfo(send_zone),
        ZoneInfo(client_zone),
        held.usable_when(Channel(channel)),
        defer,
        DEFAULT_WINDOWS.get(Channel(channel)),  # sms and voice: 08:00-21:00
    ).slots
    # In UTC: PEP 495 makes == between zones False for an ambiguous wall time.
    return [(slot.send_at.astimezone(UTC), slot.usage_day) for slot in slots]


@settings(max_examples=400, deadline=None)
@given(references, channels, zones, zones, when_patterns, defer_days)
@example(t("2026-03-07T12:00:00-05:00"), "email", NY, NY, When(6, 2, 0.9), 2)
@example(t("2026-11-01T05:30:00+00:00"), "sms", NY, NY, When(6, 1, 0.9), 1)
@example(t("2026-09-26T13:00:00+00:00"), "voice", "Pacific/Chatham", NY, When(6, 3, 0.9), 3)
def test_send_slots_agree_with_production(
    reference: datetime,
    channel: str,
    send_zone: str,
    client_zone: str,
    pattern: When | None,
    defer: int,
) -> None:
    expected = oracle.send_slots(reference, channel, send_zone, client_zone, pattern, defer)
    assert production_slots(reference, channel, send_zone, client_zone, pattern, defer) == expected


def test_tiers_agree_with_production_on_every_score() -> None:
    for score in range(101):
        assert tier_for_score(score).value == oracle.tier_of(score), score


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 100),
    st.one_of(
        st.none(),
        st.permutations(oracle.CHANNELS).flatmap(
            lambda order: st.integers(1, 5).map(lambda n: list(order[:n]))
        ),
    ),
    confidences,
)
def test_channel_sequence_agrees_with_production(
    score: int, order: list[str] | None, confidence: float
) -> None:
    held = PatternSet(how=how(order, confidence) if order is not None else None)
    sequence, source = channel_sequence(tier_for_score(score), held.usable_how())
    expected = oracle.sequence_for(oracle.tier_of(score), order, confidence)
    assert ([c.value for c in sequence], source) == expected


@settings(max_examples=200, deadline=None)
@given(
    references,
    st.integers(0, 100),
    st.one_of(st.none(), zones),
    zones,
    defer_days,
    st.one_of(st.none(), st.permutations(oracle.CHANNELS).map(list)),
    confidences,
    st.dictionaries(channels, when_values, max_size=5),
)
def test_whole_plan_agrees_with_production(
    reference: datetime,
    score: int,
    lead_zone: str | None,
    client_zone: str,
    defer: int,
    order: list[str] | None,
    how_confidence: float,
    whens: dict[str, When],
) -> None:
    """plan_lead: tier, sequence, and per channel the timing source and every slot,
    with the send zone chosen (lead's, else client's) as the production core does."""
    data = {
        "event_id": "e1",
        "lead_id": "l1",
        "client_id": "acme",
        "als_score": score,
        "scored_at": reference.isoformat(),
        "timezone": lead_zone,
    }
    lead = ScoredLead.model_validate(data)
    setup = build_setup(
        client(timezone=client_zone, max_defer_days=defer),
        [resource(ch, f"r-{ch}") for ch in oracle.CHANNELS],
    )
    held = PatternSet(
        how=how(order, how_confidence) if order is not None else None,
        when={Channel(ch): when(ch, w.day, w.hour, w.confidence) for ch, w in whens.items()},
    )
    plan = plan_lead(lead, setup, held, Schedule()).plan

    tier = oracle.tier_of(score)
    sequence, source = oracle.sequence_for(tier, order, how_confidence)
    assert (plan.tier.value, plan.sequence_source) == (tier, source)
    assert [c.channel.value for c in plan.channels] == sequence
    send_zone = lead_zone or client_zone
    for channel_plan in plan.channels:
        channel = channel_plan.channel.value
        pattern = whens.get(channel)
        usable = pattern is not None and oracle.usable(pattern.confidence)
        assert channel_plan.timing_source == ("pattern" if usable else "default")
        got = [(s.send_at.astimezone(UTC), s.usage_day) for s in channel_plan.slots]
        assert got == oracle.send_slots(reference, channel, send_zone, client_zone, pattern, defer)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_allocation_id_agrees_with_production(event_id: str) -> None:
    assert oracle.allocation_id(event_id) == derived_id("allocation", event_id)


@settings(max_examples=100, deadline=None)
@given(
    st.text(alphabet="abcxyz-019é", min_size=1, max_size=12),
    st.text(alphabet="abcxyz-019", min_size=1, max_size=12),
    references,
)
def test_derived_event_id_agrees_with_production(
    lead_id: str, client_id: str, scored_at: datetime
) -> None:
    lead = ScoredLead.model_validate(
        {
            "lead_id": lead_id,
            "client_id": client_id,
            "als_score": 50,
            "scored_at": scored_at.isoformat(),
        }
    )
    assert lead.key == oracle.event_id_of(None, lead_id, client_id, scored_at)
