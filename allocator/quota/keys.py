"""Where the quota keys live in Redis: one Redis, or a Redis Cluster with one hash tag per client.

One Redis (contract rule 3.6, unchanged):

    <prefix>ratelimit:<channel>:<resource_id>:daily:<YYYY-MM-DD>
    <prefix>allocator:held:<hold key>

and from round 2 (CONTRACT.md section 8), in the same family, with `:` and
`%` of the ids percent-escaped (a pool, lead or domain is no channel, so these
never meet a resource's key):

    <prefix>ratelimit:pool:<channel>:<client_id>:<pool_id>:daily:<YYYY-MM-DD>
    <prefix>ratelimit:lead:<client_id>:<lead_id>:daily:<YYYY-MM-DD>
    <prefix>ratelimit:domain:<client_id>:<email domain>:daily:<YYYY-MM-DD>
    <prefix>ratelimit:pace:<channel>:<resource_id>:daily:<YYYY-MM-DD>   (pacing's k)

Redis Cluster: the client's hash tag goes between the prefix and the contract's
key, so that all of a client's counters and holds share one slot and one
script call can reserve them atomically:

    <prefix>{<client tag>}ratelimit:<channel>:<resource_id>:daily:<YYYY-MM-DD>
    <prefix>{<client tag>}allocator:held:<hold key>

The prefix stays first so that it still namespaces everything a run writes
(`replay:NAME:`, a test's own prefix; streams/local.py forget_keys scans by
it). Redis hashes the text between the first `{` and the first `}` after it,
so two things keep that text exactly the client's tag, whatever the rest of
the key holds: the prefix may contain no brace (checked here), and the tag is
the client id with `%`, `{` and `}` percent-escaped, so it contains none
either. Escaping `%` too keeps the tag one-to-one with the client id, so two
clients never share keys by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from allocator.channels import Channel
from allocator.quota.base import cap_key, counter_key, pace_key, pool_key


def client_tag(client_id: str) -> str:
    """The hash tag of a client's keys on Redis Cluster: `{acme}` for `acme`."""
    if not client_id:
        # `{}` is no tag at all: Redis would hash each whole key to its own slot.
        raise ValueError("a Redis Cluster quota key needs the lead's client_id")
    escaped = client_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return "{" + escaped + "}"


@dataclass(frozen=True)
class KeyLayout:
    prefix: str = ""
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.cluster and ("{" in self.prefix or "}" in self.prefix):
            # A brace in the prefix would come before the client's tag, and a
            # `{...}` of its own would put every client in the prefix's slot
            # (or, with `{}`, hash each key apart).
            raise ValueError(
                f"on Redis Cluster the quota key prefix may not contain braces: {self.prefix!r}"
            )

    def client_prefix(self, client_id: str) -> str:
        """What precedes the contract's key for this client's keys."""
        if not self.cluster:
            return self.prefix
        return self.prefix + client_tag(client_id)

    def counter(self, client_id: str, channel: Channel, resource_id: str, day: date) -> str:
        return counter_key(self.client_prefix(client_id), channel, resource_id, day)

    def pool(self, client_id: str, channel: Channel, pool_id: str, day: date) -> str:
        return pool_key(self.client_prefix(client_id), channel, client_id, pool_id, day)

    def pace(self, client_id: str, channel: Channel, resource_id: str, day: date) -> str:
        return pace_key(self.client_prefix(client_id), channel, resource_id, day)

    def cap(self, client_id: str, kind: str, name: str, day: date) -> str:
        """A lead's (`kind` lead) or a recipient domain's (`kind` domain) day counter."""
        return cap_key(self.client_prefix(client_id), kind, client_id, name, day)

    def cap_around(self, client_id: str, kind: str, day: date) -> tuple[str, str]:
        """What comes before and after the escaped name in cap(client_id, kind,
        name, day): the Redis store builds a key per lead and day."""
        # The name comes after the client id, so its place is the last marker
        # (the client id may hold one too).
        head, _, tail = self.cap(client_id, kind, "\0", day).rpartition("\0")
        return head, tail

    def named(self, client_id: str, key: str) -> str:
        """One of the client's keys (base.py's sends_key, health_key, ...) as stored."""
        return self.client_prefix(client_id) + key

    def held(self, client_id: str, hold_key: str) -> str:
        return f"{self.client_prefix(client_id)}allocator:held:{hold_key}"
