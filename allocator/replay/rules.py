"""A set of rules to replay under: the live setup, or a counterfactual of it.

A rules file is JSON; every key is optional, and what it does not change stays
as the history's setup (its clients, resources and pools, as read):

    {"name": "28-day warm-up, weekly LinkedIn cap",
     "patterns": true,                        # use WHEN/HOW patterns (default true)
     "send_hours": {"email": 8},              # over the configured ALLOCATOR_SEND_HOUR_*
     "clients": {                             # client fields, as in clients.jsonl:
       "*":    {"max_defer_days": 5},         #   of every client
       "acme": {"rotation": "least_loaded",   #   of one client (over "*")
                "lead_daily_limit": 2,
                "recipient_domain_daily_limit": 20}},
     "types": {                               # resource fields of every resource of a type
       "linkedin_seat": {"weekly_limit": 100}},
     "resources": {                           # resource fields, as in resources.jsonl:
       "*": {"active": true},                 #   of every resource
       "mail.acme.io": {"warmup": {"every_days": 2}},  # of one (over "*" and its type)
       "acme-seat-3": {"daily_limit": 12, "weekly_limit": null, "pool_id": "acme-seats"}},
     "pools": [                               # pools added, or replaced by (client_id,
       {"client_id": "acme", "channel": "linkedin",   # channel, pool_id): lines as in
        "pool_id": "acme-seats",                      # a pools file
        "daily_limit": 40, "weekly_limit": 150}],
     "extra_resources": [                     # resources added, lines as in resources.jsonl
       {"client_id": "acme", "channel": "linkedin", "resource_id": "acme-seat-9"}]}

Round 1's keys are still read, each the shorthand of a change above (a file
may not give both for one field):

    {"max_defer_days": 0,                     # "clients": {"*": {"max_defer_days": 0}}
     "type_limits": {"linkedin_seat": 25},    # "types": {"linkedin_seat": {"daily_limit": 25}}
     "resource_limits": {"acme-seat-3": 17}}  # "resources": {"acme-seat-3": {"daily_limit": 17}}

A change names fields of the record, with values as its file takes them, held
to the same bounds (a weekly_limit of -1 or a warm-up's every_days of 0 is
refused, naming the field): a client's timezone, max_defer_days, rotation,
lead_daily_limit, recipient_domain_daily_limit, send_windows, holidays,
blackout_dates, pacing, bounce_rate_limit, complaint_limit, cooldown_hours,
suppression_days, sticky_days, sticky; a resource's daily_limit, weekly_limit, warmup,
pool_id, active; and any field either record gains. The
fields that name a record (client_id; channel, resource_id) cannot change.
`null` clears a field that may be null (no limit, no warm-up, no pool). An
object changes only the keys it names when the record holds one: `"warmup":
{"every_days": 2}` keeps the warm-up's start, initial and step and ramps half
as fast (a resource without a warm-up needs all of start, initial and step),
and a per-channel map changes only the channels it names. The changes of one
record apply in the order "*", its type, its own id, field by field.

Refused, in one line naming the key: a field a record does not have, a client
or resource id the history (with extra_resources) does not have, a pool_id
naming no pool of the resource's client and channel (among the history's pools
and the rules'), and a field set twice (a round-1 key and its change).
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, create_model

from allocator.channels import Channel, ResourceType
from allocator.decision import Schedule
from allocator.errors import ErrorCode, InvalidRecord
from allocator.models import Client, Pool, Resource, validate
from allocator.models.fields import Count, DeferDays, Hour

ANY = "*"  # a change of every client, or of every resource

# The fields that say which record a line is: a rules file changes the others.
CLIENT_KEY = frozenset({"client_id"})
RESOURCE_KEY = frozenset({"client_id", "channel", "resource_id"})

M = TypeVar("M", bound=BaseModel)
Change = Mapping[str, Any]  # fields and their JSON values, checked


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
    # Round 2: any field of a client or a resource, and pools.
    clients: dict[str, dict[str, Any]] = {}
    types: dict[ResourceType, dict[str, Any]] = {}
    resources: dict[str, dict[str, Any]] = {}
    pools: list[dict[str, Any]] = []


class Setup(NamedTuple):
    """What a replay decides with: clients, resources and pools."""

    clients: list[Client]
    resources: list[Resource]
    pools: list[Pool]


@dataclass(frozen=True)
class Rules:
    name: str = "baseline"
    use_patterns: bool = True
    max_defer_days: int | None = None
    type_limits: dict[ResourceType, int | None] = field(default_factory=dict)
    resource_limits: dict[str, int | None] = field(default_factory=dict)
    send_hours: dict[Channel, int] = field(default_factory=dict)
    extra_resources: tuple[Resource, ...] = ()
    # Round 2: changes by client id (or ANY), by resource type, by resource id
    # (or ANY); each maps fields to checked JSON values. Pools added or replaced.
    client_changes: dict[str, Change] = field(default_factory=dict)
    type_changes: dict[ResourceType, Change] = field(default_factory=dict)
    resource_changes: dict[str, Change] = field(default_factory=dict)
    pools: tuple[Pool, ...] = ()

    @classmethod
    def from_file(cls, path: str | Path) -> Rules:
        try:
            raw = json.loads(Path(path).read_text())
            spec = validate(_RulesFile, raw)  # one line naming the field, as record errors do
            extra = tuple(
                _record(Resource, r, f"extra_resources.{i}")
                for i, r in enumerate(spec.extra_resources)
            )
            pools = tuple(_record(Pool, p, f"pools.{i}") for i, p in enumerate(spec.pools))
            clients = {
                key: _change(Client, CLIENT_KEY, change, f"clients.{key}")
                for key, change in spec.clients.items()
            }
            kinds = {
                kind: _change(Resource, RESOURCE_KEY, change, f"types.{kind.value}")
                for kind, change in spec.types.items()
            }
            resources = {
                key: _change(Resource, RESOURCE_KEY, change, f"resources.{key}")
                for key, change in spec.resources.items()
            }
            if spec.max_defer_days is not None:
                _once("max_defer_days", clients.get(ANY), "max_defer_days", "clients.*")
            for kind in spec.type_limits:
                _once(f"type_limits.{kind.value}", kinds.get(kind), "daily_limit", f"types.{kind}")
            for key in spec.resource_limits:
                _once(
                    f"resource_limits.{key}", resources.get(key), "daily_limit", f"resources.{key}"
                )
        except (ValueError, InvalidRecord) as err:
            # pydantic places a bad key of a map at "<key>.[key]": the key is the place.
            raise ValueError(f"{path}: {str(err).replace('.[key]', '')}") from None
        return cls(
            spec.name,
            spec.patterns,
            spec.max_defer_days,
            dict(spec.type_limits),
            dict(spec.resource_limits),
            dict(spec.send_hours),
            extra,
            clients,
            kinds,
            resources,
            pools,
        )

    def schedule(self, configured: Schedule) -> Schedule:
        """The configured send hours (Settings.schedule()), with this rule set's changes."""
        return Schedule({**configured.hours, **self.send_hours})

    @property
    def names_pools(self) -> bool:
        """Whether these rules make a resource draw from a pool (so that a replay
        reads the pools even when no resource of the history names one)."""
        changes = [*self.type_changes.values(), *self.resource_changes.values()]
        return any(c.get("pool_id") is not None for c in changes) or any(
            r.pool_id is not None for r in self.extra_resources
        )

    def apply(
        self, clients: Sequence[Client], resources: Sequence[Resource], pools: Sequence[Pool] = ()
    ) -> Setup:
        """The setup with these rules' changes; InvalidRecord naming the rules' key
        for a client or resource the setup does not have, a value the changed
        record cannot hold, or a pool_id naming no pool."""
        every = [*resources, *self.extra_resources]
        have = {r.resource_id for r in every}
        _refuse_unknown(
            "resource_limits",
            set(self.resource_limits) - have,
            "resource",
            "(its resources and the rules' extra_resources)",
        )
        _refuse_unknown(
            "resources",
            set(self.resource_changes) - have - {ANY},
            "resource",
            "(its resources and the rules' extra_resources)",
        )
        _refuse_unknown(
            "clients",
            set(self.client_changes) - {c.client_id for c in clients} - {ANY},
            "client",
            "(the clients given)",
        )
        changed_clients = [
            _changed(Client, c, self._client_layers(c), f"client {c.client_id!r}") for c in clients
        ]
        changed_resources = [
            _changed(Resource, r, self._resource_layers(r), f"resource {r.resource_id!r}")
            for r in every
        ]
        by_key = {_pool_key(p): p for p in pools}
        by_key.update((_pool_key(p), p) for p in self.pools)
        for index, (old, resource) in enumerate(zip(every, changed_resources, strict=True)):
            # The history's own pool_ids were checked as they were read (check_pools).
            set_here = index >= len(resources) or old.pool_id != resource.pool_id
            if set_here and resource.pool_id is not None:
                key = (resource.client_id, resource.channel.value, resource.pool_id)
                if key not in by_key:
                    raise InvalidRecord(
                        ErrorCode.INVALID_FIELD,
                        "pool_id",
                        resource.pool_id,
                        f"resources: resource {resource.resource_id!r}: pool_id: client "
                        f"{resource.client_id!r} has no {resource.channel.value} pool "
                        f"{resource.pool_id!r} (among the history's pools and the rules' "
                        '"pools")',
                    )
        return Setup(changed_clients, changed_resources, list(by_key.values()))

    def _client_layers(self, client: Client) -> list[Change]:
        every: dict[str, Any] = {}
        if self.max_defer_days is not None:
            every["max_defer_days"] = self.max_defer_days
        every.update(self.client_changes.get(ANY, {}))
        return [every, self.client_changes.get(client.client_id, {})]

    def _resource_layers(self, resource: Resource) -> list[Change]:
        kind: dict[str, Any] = {}
        if resource.resource_type in self.type_limits:
            kind["daily_limit"] = self.type_limits[resource.resource_type]
        kind.update(self.type_changes.get(resource.resource_type, {}))
        own: dict[str, Any] = {}
        if resource.resource_id in self.resource_limits:
            own["daily_limit"] = self.resource_limits[resource.resource_id]
        own.update(self.resource_changes.get(resource.resource_id, {}))
        return [self.resource_changes.get(ANY, {}), kind, own]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "patterns": self.use_patterns,
            "max_defer_days": self.max_defer_days,
            "type_limits": {k.value: v for k, v in self.type_limits.items()},
            "resource_limits": self.resource_limits,
            "send_hours": {k.value: v for k, v in self.send_hours.items()},
            "extra_resources": [r.resource_id for r in self.extra_resources],
            "clients": {k: dict(v) for k, v in self.client_changes.items()},
            "types": {k.value: dict(v) for k, v in self.type_changes.items()},
            "resources": {k: dict(v) for k, v in self.resource_changes.items()},
            "pools": [p.model_dump(mode="json") for p in self.pools],
        }


# --- checking a rules file ----------------------------------------------------


def _at(where: str, err: InvalidRecord) -> InvalidRecord:
    """`err` (its message starts with its field) of a value found at `where` in
    the rules file ("clients.acme")."""
    if err.field is None:
        message = f"{where}: {err.message.removeprefix('record: ')}"
        return InvalidRecord(err.code, where, err.value, message)
    return InvalidRecord(err.code, f"{where}.{err.field}", err.value, f"{where}.{err.message}")


def _record(model: type[M], data: Any, where: str) -> M:
    if not isinstance(data, dict):
        raise InvalidRecord(
            ErrorCode.INVALID_FIELD, where, data, f"{where}: must be an object, got {data!r}"
        )
    try:
        return validate(model, data)
    except InvalidRecord as err:
        raise _at(where, err) from None


def _nested(annotation: Any) -> type[BaseModel] | None:
    """The record type of a field holding one (Resource.warmup: Warmup | None);
    None for any other field, a map of records included (Client.pacing)."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    for arg in typing.get_args(annotation) if union else (annotation,):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


@cache
def _partial(model: type[BaseModel], fixed: frozenset[str] = frozenset()) -> type[BaseModel]:
    """A model of `model`'s fields but `fixed`, each optional and checked as
    `model` checks it, refusing any other field: what one change may hold. A
    field holding a record (warmup) holds a partial one, since a change of it
    may name only some of its fields."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in fixed:
            continue
        nested = _nested(info.annotation)
        if nested is not None:
            kind: Any = _partial(nested) | None
        elif info.metadata:
            kind = Annotated[(info.annotation, *info.metadata)]
        else:
            kind = info.annotation
        fields[name] = (kind, None)
    config = ConfigDict(extra="forbid")
    made: type[BaseModel] = create_model(f"{model.__name__}Change", __config__=config, **fields)
    return made


def _fields(model: type[BaseModel], fixed: frozenset[str]) -> str:
    return ", ".join(name for name in model.model_fields if name not in fixed)


def _change(model: type[BaseModel], fixed: frozenset[str], change: Change, where: str) -> Change:
    """`change` with every field and value checked as `model`'s loader checks it."""
    kind = model.__name__.lower()
    for name in change:
        if name in fixed:
            raise InvalidRecord(
                ErrorCode.INVALID_FIELD,
                f"{where}.{name}",
                change[name],
                f"{where}.{name}: names the {kind}, it cannot be changed",
            )
        if name not in model.model_fields:
            raise InvalidRecord(
                ErrorCode.INVALID_FIELD,
                f"{where}.{name}",
                change[name],
                f"{where}.{name}: not a field of a {kind} (a change may set "
                f"{_fields(model, fixed)})",
            )
        nested = _nested(model.model_fields[name].annotation)
        value = change[name]
        if nested is not None and isinstance(value, dict):
            for inner in value:
                if inner not in nested.model_fields:
                    raise InvalidRecord(
                        ErrorCode.INVALID_FIELD,
                        f"{where}.{name}.{inner}",
                        value[inner],
                        f"{where}.{name}.{inner}: not a field of {name} (it has "
                        f"{_fields(nested, frozenset())})",
                    )
    try:
        validate(_partial(model, fixed), dict(change))
    except InvalidRecord as err:
        raise _at(where, err) from None
    return dict(change)


def _once(old: str, change: Change | None, target: str, new: str) -> None:
    """Refuse a round-1 key when the change it stands for sets the same field."""
    if change is not None and target in change:
        raise InvalidRecord(
            ErrorCode.INVALID_FIELD,
            old,
            change[target],
            f"{old}: also set as {new}.{target}; keep one of the two",
        )


def _refuse_unknown(key: str, unknown: Iterable[str], kind: str, where: str) -> None:
    missing = sorted(unknown)
    if missing:
        # A typo would otherwise compare the baseline with itself, silently.
        raise InvalidRecord(
            ErrorCode.INVALID_FIELD,
            key,
            missing,
            f"{key}: no {kind} {', '.join(missing)} in this history {where}",
        )


def _changed(model: type[M], record: M, layers: Sequence[Change], name: str) -> M:
    """`record` with each layer's fields set in turn: a record (an object) value
    changes only the fields it names when the record holds one."""
    if not any(layers):
        return record
    data = record.model_dump(mode="json")
    for layer in layers:
        for key, value in layer.items():
            current = data.get(key)
            if isinstance(value, dict) and isinstance(current, dict):
                data[key] = {**current, **value}
            else:
                data[key] = value
    try:
        return validate(model, data)
    except InvalidRecord as err:
        hint = ""
        outer = (err.field or "").split(".")[0]
        nested = (
            _nested(model.model_fields[outer].annotation) if outer in model.model_fields else None
        )
        if err.code == ErrorCode.MISSING_FIELD and nested is not None:
            required = [n for n, f in nested.model_fields.items() if f.is_required()]
            hint = f" ({name} has no {outer} to change: give {', '.join(required)})"
        raise InvalidRecord(
            err.code, err.field, err.value, f"{name}, as the rules change it: {err.message}{hint}"
        ) from None


def _pool_key(pool: Pool) -> tuple[str, str, str]:
    return (pool.client_id, pool.channel.value, pool.pool_id)
