"""A set of rules to replay under: the live setup, or a counterfactual of it.

A rules file is JSON:

    {"name": "two more seats, no deferral",
     "patterns": true,                      # use WHEN/HOW patterns (default true)
     "max_defer_days": 0,                   # for every client (default: each client's own)
     "type_limits": {"linkedin_seat": 25},  # daily limit of every resource of a type
     "resource_limits": {"acme-seat-3": 17},# daily limit of named resources
     "send_hours": {"email": 8},            # over the configured ALLOCATOR_SEND_HOUR_*
     "extra_resources": [{"client_id": "acme", "channel": "linkedin",
                          "resource_id": "acme-seat-9"}]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from allocator.channels import Channel, ResourceType
from allocator.decision import Schedule
from allocator.errors import ErrorCode, InvalidRecord
from allocator.models import Client, Resource, validate
from allocator.models.fields import Count, DeferDays, Hour


class _RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "variant"
    patterns: bool = True
    max_defer_days: DeferDays | None = None  # the loaders' bound: rules may not exceed it
    # The same bounds as the loaders and the settings: a rules file cannot ask
    # for what no client or resource row could hold.
    type_limits: dict[ResourceType, Count | None] = {}
    resource_limits: dict[str, Count | None] = {}
    send_hours: dict[Channel, Hour] = {}
    extra_resources: list[dict[str, Any]] = []


@dataclass(frozen=True)
class Rules:
    name: str = "baseline"
    use_patterns: bool = True
    max_defer_days: int | None = None
    type_limits: dict[ResourceType, int | None] = field(default_factory=dict)
    resource_limits: dict[str, int | None] = field(default_factory=dict)
    send_hours: dict[Channel, int] = field(default_factory=dict)
    extra_resources: tuple[Resource, ...] = ()

    @classmethod
    def from_file(cls, path: str | Path) -> Rules:
        try:
            raw = json.loads(Path(path).read_text())
            spec = validate(_RulesFile, raw)  # one line naming the field, as record errors do
            extra = tuple(validate(Resource, r) for r in spec.extra_resources)
        except (ValueError, InvalidRecord) as err:
            raise ValueError(f"{path}: {err}") from None
        return cls(
            spec.name,
            spec.patterns,
            spec.max_defer_days,
            dict(spec.type_limits),
            dict(spec.resource_limits),
            dict(spec.send_hours),
            extra,
        )

    def schedule(self, configured: Schedule) -> Schedule:
        """The configured send hours (Settings.schedule()), with this rule set's changes."""
        return Schedule({**configured.hours, **self.send_hours})

    def apply(
        self, clients: list[Client], resources: list[Resource]
    ) -> tuple[list[Client], list[Resource]]:
        if self.max_defer_days is not None:
            clients = [
                c.model_copy(update={"max_defer_days": self.max_defer_days}) for c in clients
            ]
        every = [*resources, *self.extra_resources]
        unknown = set(self.resource_limits) - {r.resource_id for r in every}
        if unknown:
            # A typo would otherwise compare the baseline with itself, silently.
            raise InvalidRecord(
                ErrorCode.INVALID_FIELD,
                "resource_limits",
                sorted(unknown),
                f"resource_limits: no resource {', '.join(sorted(unknown))} in this history "
                "(its resources and the rules' extra_resources)",
            )
        changed = []
        for resource in every:
            if resource.resource_id in self.resource_limits:
                limit = self.resource_limits[resource.resource_id]
                resource = resource.model_copy(update={"daily_limit": limit})
            elif resource.resource_type in self.type_limits:
                limit = self.type_limits[resource.resource_type]
                resource = resource.model_copy(update={"daily_limit": limit})
            changed.append(resource)
        return clients, changed

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "patterns": self.use_patterns,
            "max_defer_days": self.max_defer_days,
            "type_limits": {k.value: v for k, v in self.type_limits.items()},
            "resource_limits": self.resource_limits,
            "send_hours": {k.value: v for k, v in self.send_hours.items()},
            "extra_resources": [r.resource_id for r in self.extra_resources],
        }
