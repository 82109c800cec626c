"""What every control service shares: the metadata engine, storage, computes, locks.

Built once by ``build_services``; services receive it instead of reaching for globals,
so tests and several homes in one process stay independent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

from argon.control.coordinator import Coordinator, LocalCoordinator
from argon.control.events import ControlEvents
from argon.control.ip_allow import IpAllowCache
from argon.control.secretbox import SecretBox
from argon.pg import OsUser
from argon.settings import Settings

if TYPE_CHECKING:
    from argon.compute import ComputeProvider, PoolerProvider
    from argon.storage import Storage


def utcnow() -> datetime:
    return datetime.now(UTC)


# The in-process locks of old; ``ctx.locks`` is a coordinator (control/coordinator.py).
LockTable = LocalCoordinator


@dataclass
class ControlContext:
    settings: Settings
    engine: Engine
    storage: Storage
    computes: ComputeProvider      # the local ComputeManager today (compute/provider.py)
    poolers: PoolerProvider | None
    owner: OsUser
    secrets: SecretBox
    # per-object locks, operation claims and the reconciler's leadership
    locks: Coordinator = field(default_factory=LocalCoordinator)
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
