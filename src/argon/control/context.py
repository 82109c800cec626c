"""What every control service shares: the metadata engine, storage, computes, locks.

Built once by ``build_services``; services receive it instead of reaching for globals,
so tests and several homes in one process stay independent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

from argon.control.events import ControlEvents
from argon.control.ip_allow import IpAllowCache
from argon.control.secretbox import SecretBox
from argon.errors import Locked
from argon.pg import OsUser
from argon.settings import Settings

if TYPE_CHECKING:
    from argon.compute import ComputeProvider, PoolerProvider
    from argon.storage import Storage


def utcnow() -> datetime:
    return datetime.now(UTC)


class LockTable:
    """Named re-entrant locks: one per branch / endpoint / project being changed.

    A mutation that finds its object locked by another running operation answers 423,
    as Neon does; internal waits (a wake shared by several clients) block instead.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}

    def _get(self, name: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(name, threading.RLock())

    @contextmanager
    def hold(self, *names: str, wait: float = 0.0, what: str = "object") -> Iterator[None]:
        taken: list[threading.RLock] = []
        try:
            for name in sorted(set(names)):  # a fixed order: no deadlocks between two holders
                lock = self._get(name)
                if not lock.acquire(timeout=wait) if wait > 0 else not lock.acquire(blocking=False):
                    raise Locked(f"{what} is locked by a running operation; retry shortly")
                taken.append(lock)
            yield
        finally:
            for lock in reversed(taken):
                lock.release()

    @contextmanager
    def wait_for(self, name: str) -> Iterator[None]:
        lock = self._get(name)
        with lock:
            yield


@dataclass
class ControlContext:
    settings: Settings
    engine: Engine
    storage: Storage
    computes: ComputeProvider      # the local ComputeManager today (compute/provider.py)
    poolers: PoolerProvider | None
    owner: OsUser
    secrets: SecretBox
    locks: LockTable = field(default_factory=LockTable)
    # timeline id -> bytes on disk (data, WAL archive, snapshots); the reconciler refreshes
    # it, listings read it (walking a data directory per request would be too slow)
    sizes: dict[str, int] = field(default_factory=dict)
    clock: Callable[[], datetime] = utcnow
    # Called (from a worker thread) after endpoints are added or removed, so the proxy
    # opens or closes their loopback listeners before the API answers.
    on_endpoints_changed: Callable[[], None] = lambda: None
    # computes started/stopped/moved and roles changed: the proxy's caches listen here
    events: ControlEvents = field(default_factory=ControlEvents)
    # each endpoint's IP allow list, for the proxy; project and branch updates clear it
    ip_allow: IpAllowCache = field(default_factory=IpAllowCache)

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn
