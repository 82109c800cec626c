"""The background loop: suspend idle computes, notice dead ones, refresh sizes, and
the history chores (expiry, samples, snapshots, GC; see ``history.py``).

One tick looks at every active endpoint; a failure with one endpoint is logged in one
sentence and never stops the loop (as Patroni's HA cycle survives a bad member).
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select, update

from argon.control.branches import BranchService
from argon.control.context import ControlContext
from argon.control.history import HistoryKeeper
from argon.control.models import EndpointState
from argon.control.runtime import EndpointRuntime
from argon.meta import tables as t

logger = logging.getLogger(__name__)

SIZE_REFRESH_SECONDS = 30.0


class Reconciler:
    def __init__(self, ctx: ControlContext, runtime: EndpointRuntime,
                 branches: BranchService) -> None:
        self.ctx = ctx
        self.runtime = runtime
        self.sizes = branches.sizes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_size_refresh = 0.0
        self.history = HistoryKeeper(ctx, runtime, branches)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="argon-reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.ctx.settings.reconcile_interval):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the loop must survive anything
                logger.exception("reconciler tick failed")

    def tick(self) -> None:
        with self.ctx.tx() as conn:
            rows = conn.execute(select(t.endpoints.c.id, t.endpoints.c.suspend_timeout_seconds)
                                .where(t.endpoints.c.state == EndpointState.ACTIVE.value)).all()
        for row in rows:
            try:
                self._check(row.id, row.suspend_timeout_seconds)
            except Exception as exc:  # noqa: BLE001
                logger.warning("endpoint %s: check failed: %s", row.id, exc)
        self.history.tick()
        if time.monotonic() - self._last_size_refresh > SIZE_REFRESH_SECONDS:
            self._refresh_sizes()

    def _check(self, endpoint_id: str, timeout: int) -> None:
        spec = self.runtime.spec(endpoint_id)
        if self.ctx.computes.pid(spec) is None:
            with self.ctx.tx() as conn:
                conn.execute(update(t.endpoints).where(t.endpoints.c.id == endpoint_id).values(
                    state=EndpointState.IDLE.value, suspended_at=self.ctx.clock()))
            logger.warning("compute %s is not running any more; marked idle (the next "
                           "connection starts it again)", endpoint_id)
            return
        if timeout == -1:
            return
        limit = timeout or self.ctx.settings.default_suspend_timeout
        if self.ctx.computes.client_sessions(spec) > 0:
            self.runtime.touch(endpoint_id)
            return
        idle = self.runtime.idle_seconds(endpoint_id)
        if idle is None:  # proxy sessions open, or not seen since Argon started
            self.runtime.touch_if_unseen(endpoint_id)
            return
        if idle >= limit:
            self.runtime.suspend(endpoint_id, reason=f"idle for {limit} s")

    def _refresh_sizes(self) -> None:
        self._last_size_refresh = time.monotonic()
        with self.ctx.tx() as conn:
            tls = list(conn.execute(select(t.branches.c.timeline_id)).scalars())
        for tl in tls:
            try:
                self.sizes[tl] = self.ctx.storage.size_bytes(tl)
            except Exception:  # noqa: BLE001 - a timeline being deleted
                self.sizes.pop(tl, None)
