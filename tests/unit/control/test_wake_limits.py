"""Wake rate limits (token buckets) and the proxy backend's event-dropped cache."""

from __future__ import annotations

import pytest

from argon.control.proxy_backend import EventCache
from argon.control.wake_limits import TokenBuckets, WakeLimits, WakeRefused


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_steady_rate_per_address() -> None:
    clock = Clock()
    limits = WakeLimits(per_address=(3, 1), per_endpoint=(100, 100), clock=clock)
    for i in range(3):
        limits.take("203.0.113.5", f"ep-{i}")
    with pytest.raises(WakeRefused):
        limits.take("203.0.113.5", "ep-x")
    limits.take("198.51.100.7", "ep-x")      # another address has its own bucket
    clock.now = 1.0                          # one token back after a second
    limits.take("203.0.113.5", "ep-x")
    with pytest.raises(WakeRefused):
        limits.take("203.0.113.5", "ep-x")


def test_the_endpoint_bucket_limits_every_address_and_a_refusal_takes_nothing() -> None:
    clock = Clock()
    limits = WakeLimits(per_address=(2, 0), per_endpoint=(2, 0), clock=clock)
    limits.take("a", "ep-one")
    limits.take("b", "ep-one")
    with pytest.raises(WakeRefused):
        limits.take("c", "ep-one")
    limits.take("c", "ep-two")               # "c" lost no token to the refusal above
    limits.take("c", "ep-three")
    with pytest.raises(WakeRefused):
        limits.take("c", "ep-four")


def test_buckets_refill_up_to_the_burst_only() -> None:
    clock = Clock()
    buckets = TokenBuckets(2, 10, clock=clock)
    buckets.take("k", 0.0)
    clock.now = 100.0
    assert buckets.has("k", 100.0)
    buckets.take("k", 100.0)
    buckets.take("k", 100.0)
    assert not buckets.has("k", 100.0)


def test_an_event_drops_a_group_and_a_value_computed_before_it_is_not_stored() -> None:
    cache: EventCache[tuple[str, bool], str] = EventCache()
    gen = cache.generation("ep-one")
    cache.put("ep-one", ("ep-one", False), "addr-1", gen)
    cache.put("ep-two", ("ep-two", False), "addr-2", cache.generation("ep-two"))
    assert cache.get(("ep-one", False)) == "addr-1"
    stale = cache.generation("ep-one")
    cache.drop("ep-one")                     # e.g. the compute restarted
    assert cache.get(("ep-one", False)) is None
    assert cache.get(("ep-two", False)) == "addr-2"
    cache.put("ep-one", ("ep-one", False), "addr-old", stale)
    assert cache.get(("ep-one", False)) is None


def test_a_refused_wake_is_a_fixed_postgres_style_error() -> None:
    from argon.control.proxy_backend import wake_refused
    from argon.proxy import pq
    from argon.proxy.errors import ProxyError

    err = wake_refused()
    assert isinstance(err, ProxyError)
    assert (err.sqlstate, err.client_message, err.retryable) == (
        "53300", "too many compute starts requested; retry in a few seconds", True)
    wire = pq.error_response(err)
    assert b"C53300\x00" in wire and b"too many compute starts" in wire
