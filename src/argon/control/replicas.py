"""Read replicas (read_only endpoints): how they start, catch up and report their lag.

A replica is a hot standby on a data directory of its own (``storage/replicas.py``),
seeded from its branch's timeline the first time it starts (and again after a restore
or reset gave the branch another timeline).  It streams from the branch's primary while
that runs and reads the timeline's WAL archive and the primary's ``pg_wal`` otherwise,
so it never needs the primary compute: a start waits until it has replayed everything
the branch has committed (the primary's current WAL position, or a stopped primary's
shutdown checkpoint) before it takes sessions.

Locks: a replica's start holds its own endpoint lock and takes the primary's only while
it clones or configures against it; nothing that holds a primary's lock waits for a
replica's (``primary_started`` only rewrites files and signals).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import psycopg
from sqlalchemy import select

from argon.compute import ComputeAddress, ComputeSpec
from argon.compute.backup import backup_of
from argon.compute.config import SUPERUSER, primary_minimums
from argon.compute.spec import ComputeMode
from argon.errors import ArgonError
from argon.meta import tables as t
from argon.pg import Lsn
from argon.storage.replicas import PrimaryConn
from argon.storage.wal import DbState

if TYPE_CHECKING:
    from argon.control.context import ControlContext
    from argon.control.runtime import EndpointRuntime

logger = logging.getLogger(__name__)

# A replica that replays nothing for this long while behind cannot catch up (its WAL
# is gone from the archive, e.g. after GC): it is seeded again.
STALL_SECONDS = 20.0
CATCH_UP_POLL_SECONDS = 0.01
LAG_CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class ReplicaLag:
    """How far a running replica is behind what its branch has committed."""

    bytes: int                 # WAL not replayed yet
    seconds: float | None      # Postgres' replay_lag (0 when caught up; None unknown)
    primary_running: bool


class Replicas:
    def __init__(self, ctx: ControlContext, runtime: EndpointRuntime) -> None:
        self.ctx = ctx
        self.runtime = runtime
        self.store = ctx.storage.replica_store()
        self._lags: dict[str, tuple[float, ReplicaLag | None]] = {}
        self._lags_lock = threading.Lock()

    # -- metadata --------------------------------------------------------------------------

    def _primary_of(self, branch_id: str) -> str | None:
        with self.ctx.tx() as conn:
            ep = conn.execute(select(t.endpoints.c.id).where(
                t.endpoints.c.branch_id == branch_id,
                t.endpoints.c.type == "read_write")).scalar()
        return None if ep is None else str(ep)

    def _branch_of(self, endpoint_id: str) -> tuple[str, str, str]:
        """(branch id, timeline id, project id) of an endpoint."""
        with self.ctx.tx() as conn:
            row = conn.execute(
                select(t.endpoints.c.branch_id, t.branches.c.timeline_id,
                       t.endpoints.c.project_id)
                .join(t.branches, t.branches.c.id == t.endpoints.c.branch_id)
                .where(t.endpoints.c.id == endpoint_id)).one()
        return str(row.branch_id), str(row.timeline_id), str(row.project_id)

    def _primary_conn(self, primary_ep: str | None, replica_ep: str) -> PrimaryConn | None:
        if primary_ep is None:
            return None
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.endpoints.c.compute_port, t.endpoints.c.project_id)
                               .where(t.endpoints.c.id == primary_ep)).one()
        if not row.compute_port:
            return None   # never started: written when it first starts
        # where the primary listens, or will once started again (its last port)
        pspec = self.runtime.spec(primary_ep)
        address = self.ctx.computes.address(pspec) or self.ctx.computes.expected_address(pspec)
        if address is None:
            return None
        return PrimaryConn(address.host, address.port, SUPERUSER,
                           self.runtime.admin_passwords.for_project(row.project_id),
                           replica_ep)

    # -- start -----------------------------------------------------------------------------

    def start(self, endpoint_id: str, spec: ComputeSpec) -> tuple[ComputeSpec, ComputeAddress]:
        """Seed if needed, configure, start, and return once caught up (re-seeding once
        a replica that cannot catch up)."""
        branch_id, timeline_id, _project = self._branch_of(endpoint_id)
        primary_ep = self._primary_of(branch_id)
        spec = self._prepare(endpoint_id, spec, timeline_id, primary_ep)
        address = self.ctx.computes.start(spec)
        if self._caught_up(spec, timeline_id, primary_ep):
            return spec, address
        logger.warning("replica %s does not catch up with its branch; seeding it again",
                       endpoint_id)
        self.ctx.computes.stop(spec, "fast")
        self.store.remove(timeline_id, endpoint_id)
        spec = self._prepare(endpoint_id, spec, timeline_id, primary_ep)
        address = self.ctx.computes.start(spec)
        if not self._caught_up(spec, timeline_id, primary_ep):
            logger.warning("replica %s is still behind its branch after a new seed",
                           endpoint_id)
        return spec, address

    def _prepare(self, endpoint_id: str, spec: ComputeSpec, timeline_id: str,
                 primary_ep: str | None) -> ComputeSpec:
        lock: AbstractContextManager[None] = (self.ctx.locks.wait_for(f"ep:{primary_ep}")
                                      if primary_ep else nullcontext())
        with lock:
            if not self.store.exists(timeline_id, endpoint_id):
                self._seed(endpoint_id, timeline_id, primary_ep)
            self.store.write_conf(timeline_id, endpoint_id,
                                  self._primary_conn(primary_ep, endpoint_id))
        # a restore that kept the old timeline as a branch left an old copy there
        self.store.remove_everywhere(endpoint_id, keep_timeline=timeline_id)
        # what the primary wrote into the WAL so far, and what it runs with now (grown
        # since: its parameter change record is still to be replayed)
        minimums = self.store.recorded_minimums(timeline_id, endpoint_id,
                                                spec.install.bin("pg_controldata"))
        if primary_ep is not None:
            for key, value in primary_minimums(self.runtime.spec(primary_ep)).items():
                minimums[key] = max(value, minimums.get(key, 0))
        return replace(spec, standby_minimums=minimums)

    def _seed(self, endpoint_id: str, timeline_id: str, primary_ep: str | None) -> None:
        self.ctx.storage.require_space_for_branch(timeline_id, f"seed replica {endpoint_id}")
        runtime = self.runtime
        if primary_ep is not None and runtime.running(primary_ep) is None \
                and not self.store.primary_stopped_cleanly(timeline_id):
            # a branch that never started (first recovery pending) or a crashed primary:
            # its directory is consistent only once Postgres has recovered it
            logger.info("replica %s: starting primary %s to recover it first", endpoint_id,
                        primary_ep)
            runtime.ensure_running(primary_ep, activity=False)
        elif primary_ep is None and not self.store.primary_stopped_cleanly(timeline_id):
            self._settle_without_primary(timeline_id)
        if primary_ep is not None and runtime.running(primary_ep) is not None:
            pspec = runtime.spec(primary_ep)
            self.store.seed(timeline_id, endpoint_id, backup_of(self.ctx.computes, pspec))
        else:
            self.store.seed(timeline_id, endpoint_id, None)

    def _settle_without_primary(self, timeline_id: str) -> None:
        """Finish the timeline's pending recovery with a short-lived primary compute
        (a branch whose only computes are replicas)."""
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.branches.c.project_id, t.projects.c.pg_version)
                               .join(t.projects, t.projects.c.id == t.branches.c.project_id)
                               .where(t.branches.c.timeline_id == timeline_id)).one()
        compute_id = f"ep-tmp-{uuid.uuid4().hex[:10]}"
        spec = ComputeSpec(endpoint_id=compute_id, timeline_id=timeline_id,
                           install=self.runtime.install_for(row.pg_version),
                           admin_password=self.runtime.admin_passwords.for_project(
                               row.project_id))
        self.ctx.computes.start(spec)
        try:
            self.ctx.storage.recovery_finished(timeline_id)
        finally:
            self.ctx.computes.stop(spec, "fast")

    # -- catching up -----------------------------------------------------------------------

    def _target(self, timeline_id: str, primary_ep: str | None) -> tuple[Lsn | None, bool]:
        """What the branch has committed: the running primary's flushed WAL, or a
        cleanly stopped primary's shutdown checkpoint; (None, _) when unknown."""
        if primary_ep is not None and self.runtime.running(primary_ep) is not None:
            try:
                with self.ctx.computes.connect(self.runtime.spec(primary_ep)) as conn:
                    row = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
                return (Lsn.parse(row[0]) if row else None), True
            except psycopg.Error as exc:
                logger.info("primary %s did not say its WAL position: %s", primary_ep, exc)
                return None, True
        try:
            facts = self.ctx.storage.control_facts(timeline_id)
        except (OSError, ArgonError):
            return None, False
        if facts.state is not DbState.SHUTDOWNED:
            return None, False
        return facts.checkpoint, False

    def _caught_up(self, spec: ComputeSpec, timeline_id: str, primary_ep: str | None) -> bool:
        target, _running = self._target(timeline_id, primary_ep)
        if target is None:
            return True
        deadline = time.monotonic() + self.ctx.computes.start_timeout
        last, progress_at = None, time.monotonic()
        with self.ctx.computes.connect(spec) as conn:
            while time.monotonic() < deadline:
                row = conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
                replay = Lsn.parse(row[0]) if row and row[0] else Lsn(0)
                if replay >= target:
                    return True
                if replay != last:
                    last, progress_at = replay, time.monotonic()
                elif time.monotonic() - progress_at > STALL_SECONDS:
                    return False
                time.sleep(CATCH_UP_POLL_SECONDS)
        return False

    # -- the primary moved -----------------------------------------------------------------

    def primary_started(self, primary_ep: str, branch: tuple[str, str] | None = None) -> None:
        """Point the branch's replicas at the primary's (maybe new) socket; running ones
        reload, so their WAL receiver reconnects at once.  Never raises.  ``branch``:
        the primary's (branch id, timeline id) when the caller has them (a start does):
        a branch without replicas then costs one query."""
        try:
            branch_id, timeline_id = branch or self._branch_of(primary_ep)[:2]
            with self.ctx.tx() as conn:
                eps = list(conn.execute(select(t.endpoints.c.id).where(
                    t.endpoints.c.branch_id == branch_id,
                    t.endpoints.c.type == "read_only")).scalars())
            if not eps:
                return
            primary_max = self._max_connections(self.runtime.spec(primary_ep))
            for ep in eps:
                if not self.store.exists(timeline_id, ep):
                    continue
                changed = self.store.write_conf(timeline_id, ep,
                                                self._primary_conn(primary_ep, ep))
                spec = self.runtime.spec(ep)
                if self.ctx.computes.pid(spec) is None:
                    continue
                if primary_max is not None and (self._max_connections(spec) or 0) < primary_max:
                    # the primary grew (more CU): replay would pause on its parameter
                    # change record, so the replica restarts with the new minimums
                    self._restart_later(ep, "its primary now allows more connections")
                elif changed:
                    with self.ctx.computes.connect(spec) as conn:
                        conn.execute("SELECT pg_reload_conf()")
        except Exception as exc:  # noqa: BLE001 - replicas fall back to the archive
            logger.warning("primary %s started but its replicas were not told: %s",
                           primary_ep, exc)

    def _max_connections(self, spec: ComputeSpec) -> int | None:
        try:
            with self.ctx.computes.connect(spec) as conn:
                row = conn.execute("SHOW max_connections").fetchone()
            return int(row[0]) if row else None
        except (psycopg.Error, ArgonError, ValueError):
            return None

    def _restart_later(self, endpoint_id: str, why: str) -> None:
        """In a thread of its own: the caller holds the primary's lock, which the
        replica's start takes too."""
        def restart() -> None:
            try:
                self.runtime.suspend(endpoint_id, reason=why)
                self.runtime.ensure_running(endpoint_id, activity=False)
            except Exception as exc:  # noqa: BLE001 - the next connection starts it
                logger.warning("replica %s: restart failed: %s", endpoint_id, exc)
        threading.Thread(target=restart, name=f"argon-replica-restart-{endpoint_id}",
                         daemon=True).start()

    # -- lag -------------------------------------------------------------------------------

    def lag(self, endpoint_id: str) -> ReplicaLag | None:
        """The running replica's lag (None when it does not run), at most 1 s old."""
        now = time.monotonic()
        with self._lags_lock:
            cached = self._lags.get(endpoint_id)
        if cached is not None and now - cached[0] < LAG_CACHE_SECONDS:
            return cached[1]
        value = self._measure(endpoint_id)
        with self._lags_lock:
            self._lags[endpoint_id] = (time.monotonic(), value)
        return value

    def _measure(self, endpoint_id: str) -> ReplicaLag | None:
        try:
            spec = self.runtime.spec(endpoint_id)
            if spec.mode is not ComputeMode.REPLICA or self.ctx.computes.pid(spec) is None:
                return None
            branch_id, timeline_id, _project = self._branch_of(endpoint_id)
            primary_ep = self._primary_of(branch_id)
            if primary_ep is not None and self.runtime.running(primary_ep) is not None:
                # the primary first: a replay position read after it cannot look behind
                # WAL the primary wrote in between
                with self.ctx.computes.connect(self.runtime.spec(primary_ep)) as conn:
                    prow = conn.execute(
                        "SELECT pg_current_wal_flush_lsn()::text, (SELECT extract(epoch FROM "
                        "replay_lag)::float8 FROM pg_stat_replication WHERE application_name"
                        " = %s ORDER BY replay_lag DESC NULLS LAST LIMIT 1), EXISTS (SELECT 1"
                        " FROM pg_stat_replication WHERE application_name = %s)",
                        (endpoint_id, endpoint_id)).fetchone()
                assert prow is not None
                behind = max(0, Lsn.parse(prow[0]) - self._replayed(spec))
                # replay_lag is NULL once the standby replayed all that was sent
                seconds = (0.0 if behind == 0 else float(prow[1]) if prow[1] is not None
                           else 0.0 if prow[2] else None)
                return ReplicaLag(behind, seconds, True)
            replay = self._replayed(spec)
            target, _ = self._target(timeline_id, None)
            behind = 0 if target is None else max(0, target - replay)
            return ReplicaLag(behind, 0.0 if behind == 0 else None, False)
        except Exception as exc:  # noqa: BLE001 - a lag is a report, never an error
            logger.info("replica %s: lag not measured: %s", endpoint_id, exc)
            return None

    def _replayed(self, spec: ComputeSpec) -> Lsn:
        with self.ctx.computes.connect(spec) as conn:
            row = conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
        return Lsn.parse(row[0]) if row and row[0] else Lsn(0)

    def lags(self) -> dict[str, ReplicaLag]:
        """Every running replica's lag (for /metrics)."""
        with self.ctx.tx() as conn:
            eps = list(conn.execute(select(t.endpoints.c.id).where(
                t.endpoints.c.type == "read_only",
                t.endpoints.c.state == "active")).scalars())
        out = {}
        for ep in eps:
            value = self.lag(ep)
            if value is not None:
                out[ep] = value
        return out

    # -- removal and repair ----------------------------------------------------------------

    def deleted(self, endpoint_id: str) -> None:
        """The endpoint is gone: its data too (in whatever timeline holds it)."""
        self.store.remove_everywhere(endpoint_id)
        with self._lags_lock:
            self._lags.pop(endpoint_id, None)

    def repair(self) -> list[str]:
        with self.ctx.tx() as conn:
            rows = conn.execute(select(t.endpoints.c.id, t.branches.c.timeline_id)
                                .join(t.branches, t.branches.c.id == t.endpoints.c.branch_id)
                                .where(t.endpoints.c.type == "read_only")).all()
        return self.store.repair({(str(r.timeline_id), str(r.id)) for r in rows})
