"""Control-plane events the proxy listens to, so it can keep routes and verifiers in
memory instead of asking the metadata on every connection.

Listeners are called synchronously from whichever thread made the change (a service
thread, the reconciler); they must be quick and thread-safe (drop a cache entry).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon.compute import ComputeAddress

logger = logging.getLogger(__name__)

Listener = Callable[[str], None]
StartListener = Callable[[str, "ComputeAddress"], None]


class ControlEvents:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._compute: list[Listener] = []
        self._roles: list[Listener] = []
        self._started: list[StartListener] = []

    def on_compute_changed(self, fn: Listener) -> None:
        """``fn(endpoint_id)`` after a compute starts, stops or moves (port, pooler)."""
        with self._lock:
            self._compute.append(fn)

    def on_compute_started(self, fn: StartListener) -> None:
        """``fn(endpoint_id, address)`` once a compute started there, after the
        ``compute_changed`` of its start, while the start still holds the endpoint's lock
        (no suspend can come in between)."""
        with self._lock:
            self._started.append(fn)

    def on_roles_changed(self, fn: Listener) -> None:
        """``fn(branch_id)`` after a branch's roles or their passwords changed."""
        with self._lock:
            self._roles.append(fn)

    def compute_changed(self, endpoint_id: str) -> None:
        self._emit(self._compute, endpoint_id)

    def compute_started(self, endpoint_id: str, address: ComputeAddress) -> None:
        self.compute_changed(endpoint_id)
        self._emit(self._started, endpoint_id, address)

    def roles_changed(self, branch_id: str) -> None:
        self._emit(self._roles, branch_id)

    def _emit(self, listeners: Sequence[Callable[..., None]], key: str,
              *more: object) -> None:
        with self._lock:
            targets = list(listeners)
        for fn in targets:
            try:
                fn(key, *more)
            except Exception:  # noqa: BLE001 - a listener must not break the change
                logger.exception("event listener failed for %s", key)
