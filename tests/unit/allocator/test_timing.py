"""WHEN rules, hand-computed. 2026: US spring-forward Sun 8 March, fall-back Sun 1 November."""

from datetime import date, datetime

from allocator.models import zone
from allocator.timing import at_local, next_weekday_slot, next_weekly, send_slots
from tests.factories import when

NY = zone("America/New_York")
UTC = zone("UTC")
TOKYO = zone("Asia/Tokyo")


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_spring_forward_gap_moves_to_first_valid_instant() -> None:
    assert at_local(date(2026, 3, 8), 2, NY) == t("2026-03-08T03:00:00-04:00")
    assert at_local(date(2026, 3, 8), 2, NY).utcoffset().total_seconds() == -4 * 3600  # type: ignore[union-attr]


def test_fall_back_overlap_takes_first_occurrence() -> None:
    first = at_local(date(2026, 11, 1), 1, NY)
    # PEP 495: == across zones is False for an ambiguous wall time, so compare in UTC.
    assert first.astimezone(UTC) == t("2026-11-01T05:00:00+00:00")  # EDT, not 06:00Z EST
    assert first.isoformat() == "2026-11-01T01:00:00-04:00"


def test_next_weekly_across_spring_forward() -> None:
    saturday_noon = t("2026-03-07T12:00:00-05:00")
    assert next_weekly(saturday_noon, 6, 2, NY) == t("2026-03-08T03:00:00-04:00")


def test_next_weekly_is_strictly_after_reference() -> None:
    # Wednesday 14:00 UTC exactly: the next Wednesday 14:00 is a week later.
    ref = t("2026-11-25T14:00:00+00:00")
    assert next_weekly(ref, 2, 14, UTC) == t("2026-12-02T14:00:00+00:00")
    assert next_weekly(t("2026-11-25T13:59:59+00:00"), 2, 14, UTC) == ref


def test_friday_evening_lead_goes_to_monday() -> None:
    friday_evening = t("2026-11-27T18:00:00-05:00")
    assert next_weekday_slot(friday_evening, 9, NY) == t("2026-11-30T09:00:00-05:00")


def test_weekday_morning_before_hour_is_same_day() -> None:
    assert next_weekday_slot(t("2026-11-26T08:59:00-05:00"), 9, NY) == t(
        "2026-11-26T09:00:00-05:00"
    )


def test_default_deferral_skips_weekends_one_step_each() -> None:
    slots = send_slots(t("2026-11-26T12:00:00+00:00"), 9, UTC, UTC, None, 3)
    assert [s.usage_day for s in slots] == [
        date(2026, 11, 27),
        date(2026, 11, 30),
        date(2026, 12, 1),
        date(2026, 12, 2),
    ]


def test_pattern_deferral_is_next_calendar_day() -> None:
    pattern = when("email", 4, 16)  # Friday 16:00
    slots = send_slots(t("2026-11-26T12:00:00+00:00"), 9, UTC, UTC, pattern, 2)
    assert [s.send_at for s in slots] == [
        t("2026-11-27T16:00:00+00:00"),
        t("2026-11-28T16:00:00+00:00"),
        t("2026-11-29T16:00:00+00:00"),
    ]


def test_deferral_keeps_local_hour_across_dst_change() -> None:
    # Friday 30 Oct 2026 10:00 EDT, deferred over the fall-back weekend.
    pattern = when("email", 4, 10)
    slots = send_slots(t("2026-10-29T12:00:00-04:00"), 9, NY, NY, pattern, 3)
    assert [s.send_at.isoformat() for s in slots] == [
        "2026-10-30T10:00:00-04:00",
        "2026-10-31T10:00:00-04:00",
        "2026-11-01T10:00:00-05:00",
        "2026-11-02T10:00:00-05:00",
    ]


def test_lead_zone_sets_hour_client_zone_sets_quota_day() -> None:
    # Thursday 23:00Z = Friday 08:00 in Tokyo = Thursday 18:00 in New York.
    [slot] = send_slots(t("2026-11-26T23:00:00+00:00"), 9, TOKYO, NY, None, 0)
    assert slot.send_at == t("2026-11-27T09:00:00+09:00")
    assert slot.usage_day == date(2026, 11, 26)  # 19:00 Thursday in New York
