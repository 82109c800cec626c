"""How often compute starts may be asked for: token buckets per client address and per
endpoint.

The proxy only wakes a compute for a client that has authenticated, so this is defence
in depth against an authenticated flood (or a start that fails fast, retried in a
loop).  Only real starts take a token; connections to a running compute never do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# A burst, then a steady rate (tokens per second).
PER_ADDRESS = (20.0, 5.0)
PER_ENDPOINT = (10.0, 1.0)
MAX_TRACKED = 100_000       # buckets kept; full ones are dropped first


class WakeRefused(Exception):
    """Too many compute starts asked for; the client should retry in a few seconds."""


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """One bucket per key: ``burst`` tokens, refilled at ``rate`` per second."""

    def __init__(self, burst: float, rate: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.rate, self.clock = burst, rate, clock
        self._buckets: dict[str, _Bucket] = {}

    def _level(self, key: str, now: float) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(self.burst, now)
        else:
            b.tokens = min(self.burst, b.tokens + (now - b.at) * self.rate)
            b.at = now
        return b

    def has(self, key: str, now: float) -> bool:
        return self._level(key, now).tokens >= 1.0

    def take(self, key: str, now: float) -> None:
        self._level(key, now).tokens -= 1.0
        if len(self._buckets) > MAX_TRACKED:
            self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items()
                    if b.tokens + (now - b.at) * self.rate >= self.burst]:
            del self._buckets[key]


class WakeLimits:
    def __init__(self, per_address: tuple[float, float] = PER_ADDRESS,
                 per_endpoint: tuple[float, float] = PER_ENDPOINT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.addresses = TokenBuckets(*per_address, clock=clock)
        self.endpoints = TokenBuckets(*per_endpoint, clock=clock)
        self._lock = threading.Lock()

    def take(self, address: str | None, endpoint_id: str) -> None:
        """Take one start from both buckets, or raise ``WakeRefused`` taking none."""
        with self._lock:
            now = self.clock()
            if (address is not None and not self.addresses.has(address, now)) \
                    or not self.endpoints.has(endpoint_id, now):
                raise WakeRefused(endpoint_id)
            if address is not None:
                self.addresses.take(address, now)
            self.endpoints.take(endpoint_id, now)
