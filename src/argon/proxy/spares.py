"""Spare logins to an endpoint's PgBouncer or compute, ready for the next client.

A pooled client costs the proxy a second login after its own: connect to PgBouncer,
startup, two SCRAM round trips.  A PgBouncer client connection in transaction mode holds
no server connection while idle, so after a pooled session logs in the proxy opens one
more login with the same role, database and startup parameters (and the same key) and
keeps it for the next client that authenticates as that role: that client's session
starts as soon as its own SCRAM exchange ends.

A spare is keyed by the address (PgBouncer's or the compute's), the startup parameters
and the role's StoredKey (a changed password never reuses an old login), lives
``SPARE_TTL`` seconds, and is dropped if the other end closes or writes to it.  A
session's own login comes back here when it ended leaving nothing of it
(``argon.proxy.reuse``), so a client that connects per request costs no new login.

On a direct door only sessions' own backends are kept (the proxy opens no extra ones): a
kept backend shows in ``pg_stat_activity`` as idle and counts against ``max_connections``,
so a compute keeps at most ``BACKENDS_PER_COMPUTE`` of them, and a login the compute
refuses for want of slots makes the proxy close them (``discard_backends``).  Before a
client gets one the proxy checks that a new login of the role would start the same way,
and a backend comes back here only through ``DISCARD ALL`` (``argon.proxy.backend_reset``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from argon.proxy.backend import ComputeAddress
from argon.proxy.relay import PgSide

logger = logging.getLogger(__name__)

SPARE_TTL = 10.0
SPARES_PER_KEY = 8
SPARES_TOTAL = 256
# Kept direct-door backends per compute (each holds one of its max_connections slots).
BACKENDS_PER_COMPUTE = 16

SpareKey = tuple[ComputeAddress, tuple[tuple[str, str], ...], bytes]


def spare_key(address: ComputeAddress, params: dict[str, str], stored_key: bytes) -> SpareKey:
    return (address, tuple(sorted(params.items())), stored_key)


@dataclass
class Spare:
    side: PgSide
    address: ComputeAddress
    reply: list[tuple[bytes, bytes]]       # PgBouncer's messages after AuthenticationOk
    backend_key: bytes                     # its BackendKeyData body (pid, secret)
    backend: bool = False                  # a direct door's compute backend (reset)
    login_names: bytes = b""               # its settings from pg_db_role_setting
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def usable(self) -> bool:
        return not self.side.closed and not self.side.buf


class SparePool:
    def __init__(self) -> None:
        self._spares: dict[SpareKey, list[Spare]] = {}
        self._opening: dict[SpareKey, int] = {}
        self._total = 0

    def take(self, key: SpareKey) -> Spare | None:
        spares = self._spares.get(key)
        while spares:
            spare = spares.pop()
            self._forget(spare)
            if spare.usable():
                return spare
            spare.side.close()
        return None

    def discard(self, key: SpareKey) -> None:
        """Close every spare of ``key`` (they no longer match a fresh login)."""
        for spare in self._spares.pop(key, []):
            self._total -= 1
            _shut(spare)

    def discard_backends(self, address: ComputeAddress) -> int:
        """Close the kept backends of the compute at ``address``; how many there were."""
        keys = [k for k, v in self._spares.items()
                if k[0] == address and any(s.backend for s in v)]
        closed = sum(len(self._spares[k]) for k in keys)
        for key in keys:
            self.discard(key)
        return closed

    def _backends(self, address: ComputeAddress) -> int:
        return sum(len(v) for k, v in self._spares.items() if k[0] == address)

    def has(self, key: SpareKey) -> bool:
        """Whether a spare waits for ``key`` (it may still turn out closed)."""
        return bool(self._spares.get(key))

    def give_back(self, key: SpareKey, spare: Spare) -> bool:
        """Keep the login of a session that left it as fresh (``argon.proxy.reuse``);
        False (and closed) if it is not usable or the pool is full."""
        if (not spare.usable() or len(self._spares.get(key, ())) >= SPARES_PER_KEY
                or self._total >= SPARES_TOTAL
                or spare.backend and self._backends(spare.address) >= BACKENDS_PER_COMPUTE):
            spare.side.close()
            return False
        self._keep(key, spare)
        return True

    def _keep(self, key: SpareKey, spare: Spare) -> None:
        self._total += 1
        self._spares.setdefault(key, []).append(spare)
        spare.timer = asyncio.get_running_loop().call_later(
            SPARE_TTL, self._expire, key, spare)

    def refill(self, key: SpareKey, login: Callable[[], Awaitable[Spare | None]],
               count: int = 1) -> None:
        """Open up to ``count`` more spares for ``key`` in the background."""
        have = len(self._spares.get(key, ())) + self._opening.get(key, 0)
        for _ in range(min(count, SPARES_PER_KEY - have, SPARES_TOTAL - self._total)):
            self._opening[key] = self._opening.get(key, 0) + 1
            self._total += 1
            task = asyncio.ensure_future(login())
            task.add_done_callback(lambda t, key=key: self._opened(key, t))

    def _opened(self, key: SpareKey, task: asyncio.Future[Spare | None]) -> None:
        self._opening[key] -= 1
        if not self._opening[key]:
            del self._opening[key]
        self._total -= 1
        spare = None if task.cancelled() or task.exception() else task.result()
        if spare is not None:
            self._keep(key, spare)

    def _expire(self, key: SpareKey, spare: Spare) -> None:
        spares = self._spares.get(key)
        if spares and spare in spares:
            spares.remove(spare)
            self._forget(spare)
            spare.side.close()

    def _forget(self, spare: Spare) -> None:
        self._total -= 1
        if spare.timer is not None:
            spare.timer.cancel()
        for key in [k for k, v in self._spares.items() if not v]:
            del self._spares[key]

    def close(self) -> None:
        for spares in self._spares.values():
            for spare in spares:
                _shut(spare)
        self._spares.clear()
        self._total = 0

    def __len__(self) -> int:
        return sum(len(v) for v in self._spares.values())


def _shut(spare: Spare) -> None:
    """Close a spare that leaves the pool, and its expiry timer."""
    if spare.timer is not None:
        spare.timer.cancel()
    spare.side.close()
