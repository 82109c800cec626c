"""The reconciler's history chores: expiry, time samples, snapshots, GC, leftovers.

Each chore runs at its own interval and survives failures one item at a time.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from sqlalchemy import select, update

from argon.compute.backup import backup_of
from argon.control.branches import BranchService
from argon.control.context import ControlContext
from argon.control.models import BranchState, EndpointState
from argon.control.runtime import EndpointRuntime
from argon.meta import tables as t
from argon.pg import Lsn

logger = logging.getLogger(__name__)

SAMPLE_SECONDS = 10.0          # time -> LSN samples of running computes
GC_SECONDS = 60.0
EPHEMERAL_IDLE_SECONDS = 60.0  # a time-travel compute nobody uses is released
# Periodic snapshots of running computes, by WAL written since the newest one.
SNAPSHOT_BYTES = {"reflink": 16 * 1024 * 1024, "copy": 128 * 1024 * 1024}
SNAPSHOT_MIN_SECONDS = 300.0  # per timeline, counted from Argon's start too


class HistoryKeeper:
    def __init__(self, ctx: ControlContext, runtime: EndpointRuntime,
                 branches: BranchService) -> None:
        self.ctx = ctx
        self.runtime = runtime
        self.branches = branches
        self.tt = branches.tt
        self._last_sample = float("-inf")   # monotonic: a fresh boot is near 0
        self._last_gc = time.monotonic()
        self._last_snapshot: dict[str, float] = {}
        self._ephemeral_idle: dict[str, float] = {}
        self._started = time.monotonic()

    def tick(self) -> None:
        for chore in (self.expire, self.sample, self.gc, self.release_idle, self.fill_lsns):
            try:
                chore()
            except Exception as exc:  # noqa: BLE001 - one chore must not stop the others
                logger.warning("history chore %s failed: %s", chore.__name__, exc)

    # -- expiry --------------------------------------------------------------------------

    def expire(self) -> None:
        now = self.ctx.clock()
        with self.ctx.tx() as conn:
            due = conn.execute(select(t.branches.c.id, t.branches.c.project_id,
                                      t.branches.c.name)
                               .where(t.branches.c.expires_at.is_not(None),
                                      t.branches.c.expires_at <= now,
                                      t.branches.c.state == BranchState.READY.value)).all()
        if not due:
            return
        service = self.branches
        for b in due:
            try:
                service.delete(b.project_id, b.id)
                logger.info("branch %s (%s) expired and was deleted", b.name, b.id)
            except Exception as exc:  # noqa: BLE001
                logger.warning("expired branch %s was not deleted: %s; clear its expires_at "
                               "or fix the cause", b.name, exc)

    # -- samples and snapshots -------------------------------------------------------------

    def sample(self) -> None:
        if time.monotonic() - self._last_sample < SAMPLE_SECONDS:
            return
        self._last_sample = time.monotonic()
        with self.ctx.tx() as conn:
            rows = conn.execute(
                select(t.endpoints.c.id, t.branches.c.timeline_id)
                .join(t.branches, t.branches.c.id == t.endpoints.c.branch_id)
                .where(t.endpoints.c.state == EndpointState.ACTIVE.value,
                       t.endpoints.c.type == "read_write")).all()
        storage = self.ctx.storage
        for row in rows:
            try:
                spec = self.runtime.spec(row.id)
                with self.ctx.computes.connect(spec) as conn:
                    r = conn.execute("SELECT now(), pg_current_wal_insert_lsn()::text, "
                                     "pg_is_in_recovery()").fetchone()
                if r is None or r[2]:
                    continue
                lsn = Lsn.parse(r[1])
                storage.record_sample(row.timeline_id, r[0], lsn)
                self._maybe_snapshot(row.id, row.timeline_id, lsn)
            except Exception as exc:  # noqa: BLE001
                logger.debug("sampling %s failed: %s", row.id, exc)

    def _maybe_snapshot(self, endpoint_id: str, timeline_id: str, lsn: Lsn) -> None:
        storage = self.ctx.storage
        every = SNAPSHOT_BYTES.get(storage.driver.name, SNAPSHOT_BYTES["copy"])
        last = [s for s in storage.snapshots(timeline_id) if s.lsn <= lsn]
        if last and int(lsn) - int(last[-1].lsn) < every:
            return
        if time.monotonic() - self._last_snapshot.get(timeline_id, self._started) \
                < SNAPSHOT_MIN_SECONDS:
            return
        self._last_snapshot[timeline_id] = time.monotonic()
        with self.ctx.locks.wait_for(f"ep:{endpoint_id}"):
            if self.runtime.running(endpoint_id) is None:
                return
            spec = self.runtime.spec(endpoint_id)
            storage.snapshot_running(timeline_id, backup_of(self.ctx.computes, spec))

    # -- GC ------------------------------------------------------------------------------

    def gc(self, force: bool = False) -> int:
        """Run history GC over every live timeline; returns the number of items removed."""
        if not force and time.monotonic() - self._last_gc < GC_SECONDS:
            return 0
        self._last_gc = time.monotonic()
        now = self.ctx.clock()
        with self.ctx.tx() as conn:
            rows = conn.execute(select(t.branches.c.timeline_id, t.branches.c.state,
                                       t.projects.c.history_retention_seconds)
                                .join(t.projects, t.projects.c.id == t.branches.c.project_id)
                                ).all()
        timelines = [r.timeline_id for r in rows]
        starts = {r.timeline_id: now - timedelta(seconds=r.history_retention_seconds)
                  for r in rows}
        # A branch being made or restored reads its source's history: keep all of it.
        pinned = {r.timeline_id for r in rows if r.state != BranchState.READY.value}
        pinned |= self.tt.ephemeral_timelines()
        plan = self.ctx.storage.collect_garbage(timelines, starts, pinned)
        return len(plan.deletions)

    # -- leftovers ---------------------------------------------------------------------------

    def release_idle(self) -> None:
        now = time.monotonic()
        for compute_id in self.tt.ephemeral_ids():
            spec = self.tt.ephemeral_spec(compute_id)
            if spec is None:
                continue
            try:
                busy = self.ctx.computes.client_sessions(spec) > 0
            except Exception:  # noqa: BLE001 - it stopped: release it
                busy = False
            if busy:
                self._ephemeral_idle.pop(compute_id, None)
                continue
            since = self._ephemeral_idle.setdefault(compute_id, now)
            if now - since >= EPHEMERAL_IDLE_SECONDS:
                self.tt.release_ephemeral(compute_id)
                self._ephemeral_idle.pop(compute_id, None)

    def fill_lsns(self) -> None:
        """A branch made at a timestamp learns its exact LSN once it has recovered."""
        with self.ctx.tx() as conn:
            rows = conn.execute(select(t.branches.c.id, t.branches.c.timeline_id).where(
                t.branches.c.parent_id.is_not(None), t.branches.c.parent_lsn.is_(None))).all()
        for row in rows:
            try:
                m = self.ctx.storage.manifest(row.timeline_id)
            except Exception:  # noqa: BLE001 - being deleted
                continue
            if m.branch_lsn_exact and m.branch_point is not None:
                with self.ctx.tx() as conn:
                    conn.execute(update(t.branches).where(t.branches.c.id == row.id).values(
                        parent_lsn=str(m.branch_point.lsn)))
