"""Outreach channels, the resource type that carries each, and their defaults."""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal


class Channel(StrEnum):
    # Declaration order is the default sequence order (contract section 1).
    EMAIL = "email"
    LINKEDIN = "linkedin"
    VOICE = "voice"
    SMS = "sms"
    DIRECT_MAIL = "direct_mail"


class ResourceType(StrEnum):
    EMAIL_DOMAIN = "email_domain"
    LINKEDIN_SEAT = "linkedin_seat"
    VOICE_NUMBER = "voice_number"
    SMS_NUMBER = "sms_number"
    MAIL_VENDOR = "mail_vendor"


RESOURCE_TYPE: dict[Channel, ResourceType] = {
    Channel.EMAIL: ResourceType.EMAIL_DOMAIN,
    Channel.LINKEDIN: ResourceType.LINKEDIN_SEAT,
    Channel.VOICE: ResourceType.VOICE_NUMBER,
    Channel.SMS: ResourceType.SMS_NUMBER,
    Channel.DIRECT_MAIL: ResourceType.MAIL_VENDOR,
}

# None means unlimited (mail vendors have no daily cap in the design).
DEFAULT_DAILY_LIMIT: dict[ResourceType, int | None] = {
    ResourceType.LINKEDIN_SEAT: 17,
    ResourceType.EMAIL_DOMAIN: 50,
    ResourceType.SMS_NUMBER: 100,
    ResourceType.VOICE_NUMBER: 50,
    ResourceType.MAIL_VENDOR: None,
}

# Local hour of the default weekday schedule; each is configurable (config.py).
DEFAULT_SEND_HOUR: dict[Channel, int] = {
    Channel.EMAIL: 9,
    Channel.LINKEDIN: 10,
    Channel.VOICE: 11,
    Channel.SMS: 12,
    Channel.DIRECT_MAIL: 9,
}

# Status of a channel entry. A record says allocated, exhausted or no_resource
# (contract section 2, lead-allocations); what reports count (metrics, the
# replay's summary and report, the demo) splits allocated into on the day asked
# for and deferred to a later day. These are the labels and their display
# order, written once; Final, so that each also type-checks where a record's
# Literal status is due.
ALLOCATED: Final = "allocated"
DEFERRED: Final = "deferred"
EXHAUSTED: Final = "exhausted"
NO_RESOURCE: Final = "no_resource"
# Round 2 (CONTRACT.md section 10): the lead stopped (a reply, a meeting, an
# unsubscribe) within its client's suppression period.
SUPPRESSED: Final = "suppressed"
REPORTED_STATUSES: tuple[str, ...] = (ALLOCATED, DEFERRED, EXHAUSTED, NO_RESOURCE, SUPPRESSED)
# What a record's entry may say (the type of its status field).
EntryStatus = Literal["allocated", "exhausted", "no_resource", "suppressed"]


def reported_status(status: str, deferral: int | None) -> str:
    """An entry's status as reports count it: deferred if allocated `deferral` > 0 days late."""
    return DEFERRED if deferral else status
