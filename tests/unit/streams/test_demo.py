"""The demo's send-events: a reply with sends still to come, and a throttled sender."""

from __future__ import annotations

from typing import Any

from allocator.models import SendEvent
from streams.demo import feedback_for


def allocation(i: int, *sends: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "event_id": f"ev-{i}",
        "allocation_id": f"a-{i}",
        "lead_id": f"lead-{i}",
        "client_id": "acme",
        "channels": [
            {"channel": ch, "status": "allocated", "resource_id": rid, "send_at": at}
            for ch, rid, at in sends
        ],
    }


def test_a_reply_and_a_throttle_that_are_valid_send_events() -> None:
    out = feedback_for(
        [
            allocation(0, ("email", "m1", "2026-11-27T09:00:00+00:00")),  # one send: skipped
            allocation(
                1,
                ("linkedin", "s1", "2026-11-27T10:00:00+00:00"),
                ("email", "m1", "2026-11-27T09:00:00+00:00"),
            ),
            allocation(2, ("email", "m2", "2026-11-27T09:00:00+00:00")),
        ]
    )
    reply, throttle = (SendEvent.model_validate(e) for e in out)
    assert (reply.kind, reply.lead_id) == ("replied", "lead-1")
    assert reply.occurred_at.isoformat() == "2026-11-27T09:00:00+00:00"  # before the linkedin send
    assert (throttle.kind, throttle.resource_id, throttle.allocation_id) == (
        "throttled",
        "m2",
        "a-2",
    )
    assert throttle.retry_after is not None and throttle.retry_after > throttle.occurred_at
