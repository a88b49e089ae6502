"""Quota key layout: the contract's keys on one Redis; one slot per client on a cluster."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from allocator.channels import Channel
from allocator.quota.keys import KeyLayout, client_tag
from allocator.quota.redis_store import RedisTarget

DAY = date(2026, 11, 27)
# Ids as the contract allows them: any non-empty text; braces and % on purpose.
ids = st.text(st.sampled_from("{}%7Dab:é "), min_size=1, max_size=12) | st.text(min_size=1)


def test_one_redis_keeps_the_contract_keys() -> None:
    layout = KeyLayout("p:")
    assert layout.counter("acme", Channel.LINKEDIN, "seat-1", DAY) == (
        "p:ratelimit:linkedin:seat-1:daily:2026-11-27"
    )
    assert layout.held("acme", "ev") == "p:allocator:held:ev"


def test_a_cluster_puts_the_client_tag_after_the_prefix() -> None:
    assert KeyLayout("", cluster=True).counter("acme", Channel.EMAIL, "d.io", DAY) == (
        "{acme}ratelimit:email:d.io:daily:2026-11-27"
    )
    assert KeyLayout("replay:x:", cluster=True).held("acme", "ev") == (
        "replay:x:{acme}allocator:held:ev"
    )


def test_braces_and_percent_are_escaped() -> None:
    assert client_tag("a{b}c%") == "{a%7Bb%7Dc%25}"


@given(ids, st.lists(ids, min_size=1, max_size=4), ids, st.sampled_from(["", "t:1:"]))
def test_all_of_a_clients_keys_share_its_tags_slot(
    client: str, resources: list[str], hold: str, prefix: str
) -> None:
    layout = KeyLayout(prefix, cluster=True)
    keys = [layout.counter(client, Channel.SMS, r, DAY) for r in resources]
    keys.append(layout.held(client, hold))
    slot = key_slot(client_tag(client).encode())
    assert {key_slot(k.encode()) for k in keys} == {slot}
    # ... and the slot Redis computes is the one of exactly the escaped id
    escaped = client_tag(client)[1:-1]
    assert slot == key_slot(escaped.encode())


@given(ids, ids)
def test_two_clients_never_share_a_tag(a: str, b: str) -> None:
    assert (client_tag(a) == client_tag(b)) == (a == b)


def test_a_cluster_refuses_braces_in_the_prefix_and_an_empty_client() -> None:
    with pytest.raises(ValueError, match="braces"):
        KeyLayout("{x}:", cluster=True)
    with pytest.raises(ValueError, match="client_id"):
        KeyLayout("", cluster=True).counter("", Channel.SMS, "r", DAY)
    assert KeyLayout("{x}:").held("", "ev") == "{x}:allocator:held:ev"  # one Redis: as given


def test_urls() -> None:
    one = RedisTarget.parse("redis://h:1/2")
    assert one == RedisTarget("redis://h:1/2", cluster=False)
    cluster = RedisTarget.parse("rediss+cluster://u:p@h:7000?wait_replicas=1&ssl_cert_reqs=none")
    assert cluster == RedisTarget("rediss://u:p@h:7000?ssl_cert_reqs=none", True, 1, 100)
    assert RedisTarget.parse("redis+cluster://h:1?wait_timeout_ms=20").wait_timeout_ms == 20
    # redis-py's own parameters pass as written (it unquotes them itself)
    given = "rediss://:p%40ss@h:1/0?ssl_ca_certs=%2Ftmp%2Fca%25.pem&wait_replicas=2"
    assert RedisTarget.parse(given).url == "rediss://:p%40ss@h:1/0?ssl_ca_certs=%2Ftmp%2Fca%25.pem"
    for bad in ("redis://h?wait_replicas=x", "redis://h?wait_timeout_ms=0"):
        with pytest.raises(ValueError):
            RedisTarget.parse(bad)
