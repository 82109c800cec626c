"""The background loop: suspend idle computes, notice dead ones, refresh sizes, and
the history chores (expiry, samples, snapshots, GC; see ``history.py``).

One tick looks at every active endpoint; a failure with one endpoint is logged in one
sentence and never stops the loop (as Patroni's HA cycle survives a bad member).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update

from argon.compute import ComputeSpec
from argon.control import compute_address, compute_runs
from argon.control.branches import BranchService
from argon.control.context import ControlContext
from argon.control.history import HistoryKeeper
from argon.control.models import EndpointState
from argon.control.runtime import EndpointRuntime
from argon.errors import Locked
from argon.meta import tables as t

logger = logging.getLogger(__name__)

SIZE_REFRESH_SECONDS = 30.0
# How often the verifiers of roles made with SQL are copied out of running computes
# (one short query each); a suspend copies them too.
SQL_ROLE_SYNC_SECONDS = 10.0


class Reconciler:
    def __init__(self, ctx: ControlContext, runtime: EndpointRuntime,
                 branches: BranchService,
                 recover: Callable[[bool], list[str]] | None = None) -> None:
        self.ctx = ctx
        # Run whenever this process becomes the leader: at start (the crash repair) and
        # when it takes over from a leader that died (what that one left is recovered).
        self.recover = recover
        self._was_leading = False
        self.runtime = runtime
        self.sizes = branches.sizes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_size_refresh = float("-inf")   # monotonic: a fresh boot is near 0
        self._last_role_sync = float("-inf")
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
                if self.lead():
                    self.tick()
                else:   # sizes are this process's own cache: kept fresh on every process
                    self.refresh_sizes_if_due()
            except Exception:  # noqa: BLE001 - the loop must survive anything
                logger.exception("reconciler tick failed")

    def lead(self) -> bool:
        """Whether this process leads (several Argons on one metadata database: only the
        leader runs the passes)."""
        self.take_lead()
        return self._was_leading

    def take_lead(self, serving: bool = True) -> list[str]:
        """Take or keep leadership; on taking it, first recover what was left unfinished
        (at start, or by a leader that crashed) and say what was repaired.  ``serving``:
        the API already runs here, so the recovery leaves work in progress alone."""
        leading = self.ctx.locks.try_lead()
        done: list[str] = []
        if leading and not self._was_leading:
            logger.info("reconciler: this process leads (%s)", self.ctx.locks.describe())
            if self.recover is not None:
                done = self.recover(serving)
        elif self._was_leading and not leading:
            logger.warning("reconciler: leadership lost; passes paused until it is regained")
        self._was_leading = leading
        return done

    def tick(self) -> None:
        with self.ctx.tx() as conn:
            rows = conn.execute(select(t.endpoints.c.id, t.endpoints.c.suspend_timeout_seconds,
                                       t.endpoints.c.last_active)
                                .where(t.endpoints.c.state == EndpointState.ACTIVE.value)).all()
        sync_roles = time.monotonic() - self._last_role_sync >= SQL_ROLE_SYNC_SECONDS
        if sync_roles:
            self._last_role_sync = time.monotonic()
        for row in rows:
            try:
                self._check(row.id, row.suspend_timeout_seconds, sync_roles, row.last_active)
            except Exception as exc:  # noqa: BLE001
                logger.warning("endpoint %s: check failed: %s", row.id, exc)
        self.history.tick()
        self.refresh_sizes_if_due()

    def refresh_sizes_if_due(self) -> None:
        if time.monotonic() - self._last_size_refresh > SIZE_REFRESH_SECONDS:
            self._refresh_sizes()

    def _check(self, endpoint_id: str, timeout: int, sync_roles: bool = False,
               last_active: datetime | None = None) -> None:
        spec = self.runtime.spec(endpoint_id)
        limit = timeout or self.ctx.settings.default_suspend_timeout
        if self.ctx.computes.pid(spec) is None:
            self._gone(endpoint_id, limit)
            return
        if sync_roles:
            self.runtime.sync_sql_roles(endpoint_id, spec)
        if timeout == -1:
            return
        # Argon's own view first: asking Postgres means a new backend (fork + SCRAM) every
        # tick for every running compute, so only once the proxy has seen no activity for
        # the whole limit.
        # ``last_active``: what other Argon processes on the metadata stored of their use
        idle = self.runtime.idle_seconds(endpoint_id, last_active)
        if idle is None:  # proxy sessions open, or not seen since Argon started
            self.runtime.touch_if_unseen(endpoint_id)
            return
        if idle < limit:
            return
        if self.runtime.has_sessions(endpoint_id):   # open through another Argon process
            return
        if self.ctx.computes.client_sessions(spec) > 0:   # sessions the proxy cannot see
            self.runtime.touch(endpoint_id)
            return
        # decided outside the lock: suspend() checks again under it, so a client that
        # connected meanwhile is not cut off
        self.runtime.suspend(endpoint_id, reason=f"idle for {limit} s", idle_limit=limit)

    def _gone(self, endpoint_id: str, limit: int) -> None:
        """A compute that is not running any more (crashed, killed).  In use (sessions,
        recent activity, a running pooler): start it again at once, on the same port,
        so clients and PgBouncer reconnect within seconds.  Otherwise: mark it idle.

        Decided under the endpoint's lock, on a fresh look: a compute suspended (or
        started) since the tick listed it is not a crash.  A lock held by a longer
        operation (a branch of it) defers the decision to the next tick.
        """
        try:
            with self.ctx.locks.hold(f"ep:{endpoint_id}"):
                with self.ctx.tx() as conn:
                    state = conn.execute(select(t.endpoints.c.state).where(
                        t.endpoints.c.id == endpoint_id)).scalar()
                spec = self.runtime.spec(endpoint_id)
                if state != EndpointState.ACTIVE.value or self.ctx.computes.pid(spec):
                    return
                if compute_address.live_recorded(self.ctx, endpoint_id):
                    return   # running, started by another Argon process on this metadata
                if self._in_use(endpoint_id, spec, limit) and self._restart(endpoint_id):
                    return
                with self.ctx.tx() as conn:
                    now = self.ctx.clock()
                    conn.execute(update(t.endpoints).where(t.endpoints.c.id == endpoint_id)
                                 .values(state=EndpointState.IDLE.value, suspended_at=now,
                                         **compute_address.CLEARED))
                    compute_runs.closed(conn, endpoint_id, now)
        except Locked:
            return
        logger.warning("compute %s is not running any more; marked idle (the next "
                       "connection starts it again)", endpoint_id)

    def _in_use(self, endpoint_id: str, spec: ComputeSpec, limit: int) -> bool:
        poolers = self.ctx.poolers
        if poolers is not None and poolers.pid(self.runtime.pooler_key(endpoint_id)) is not None:
            return True
        return limit == -1 or self.runtime.recently_active(endpoint_id, limit)

    def _restart(self, endpoint_id: str) -> bool:
        logger.warning("compute %s died while in use; starting it again", endpoint_id)
        try:
            self.runtime.ensure_running(endpoint_id, activity=False)
            return True
        except Exception as exc:  # noqa: BLE001 - reported; the next connection retries
            logger.warning("compute %s: restart after a crash failed: %s", endpoint_id,
                           getattr(exc, "message", exc))
            return False

    def _refresh_sizes(self) -> None:
        self._last_size_refresh = time.monotonic()
        with self.ctx.tx() as conn:
            tls = list(conn.execute(select(t.branches.c.timeline_id)).scalars())
        for tl in tls:
            try:
                self.sizes[tl] = self.ctx.storage.size_bytes(tl)
            except Exception:  # noqa: BLE001 - a timeline being deleted
                self.sizes.pop(tl, None)
