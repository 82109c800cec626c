"""Running endpoints: start, suspend and wake computes, and track activity.

The single place that turns an endpoint's metadata into a ``ComputeSpec`` and talks to
the compute room.  The API, the proxy's wake path and the idle reconciler all go
through ``EndpointRuntime`` so that a start is shared and state stays truthful.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, replace

import psycopg
from sqlalchemy import select, update

from argon.compute import ComputeSpec, PoolerSpec, socket_dir_for
from argon.control.context import ControlContext
from argon.control.models import EndpointState, OperationAction
from argon.control.operations import OperationLog
from argon.errors import ArgonError, Conflict, NotFound
from argon.pg import PgInstall, choose_install
from argon.meta import tables as t

logger = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RunningCompute:
    endpoint_id: str
    socket_dir: str
    port: int


class EndpointRuntime:
    def __init__(self, ctx: ControlContext, oplog: OperationLog) -> None:
        self.ctx = ctx
        self.oplog = oplog
        self._installs: dict[int, PgInstall] = {}
        self._installs_lock = threading.Lock()
        # activity seen outside Postgres' own view (proxy sessions), by endpoint id
        self._sessions: dict[str, int] = {}
        self._last_seen: dict[str, float] = {}
        self._activity_lock = threading.Lock()

    # -- specs ---------------------------------------------------------------------------

    def install_for(self, pg_version: int) -> PgInstall:
        with self._installs_lock:
            if pg_version not in self._installs:
                self._installs[pg_version] = choose_install(pg_version).accessible_for(
                    self.ctx.owner.uid, self.ctx.settings.home / "pg")
            return self._installs[pg_version]

    def spec(self, endpoint_id: str, port: int | None = None) -> ComputeSpec:
        with self.ctx.tx() as conn:
            row = conn.execute(
                select(t.endpoints, t.branches.c.timeline_id, t.projects.c.pg_version)
                .join(t.branches, t.branches.c.id == t.endpoints.c.branch_id)
                .join(t.projects, t.projects.c.id == t.endpoints.c.project_id)
                .where(t.endpoints.c.id == endpoint_id)).first()
        if row is None:
            raise NotFound(f"endpoint {endpoint_id!r} not found")
        home = self.ctx.settings.home
        return ComputeSpec(
            endpoint_id=endpoint_id,
            pgdata=self.ctx.storage.pgdata(row.timeline_id),
            install=self.install_for(row.pg_version),
            port=port or row.compute_port or 0,
            socket_dir=socket_dir_for(home, endpoint_id),
            log_path=home / "logs" / f"{endpoint_id}.log",
            cu_min=row.min_cu, cu_max=row.max_cu,
            pg_settings=dict(row.pg_settings or {}),
        )

    def pooler_spec(self, compute: ComputeSpec) -> PoolerSpec:
        home = self.ctx.settings.home
        return PoolerSpec(
            endpoint_id=compute.endpoint_id, compute=compute, port=0,
            socket_dir=socket_dir_for(home, compute.endpoint_id + "-pooler"),
            workdir=home / "run" / "pgbouncer" / compute.endpoint_id)

    # -- state changes -------------------------------------------------------------------

    def running(self, endpoint_id: str) -> RunningCompute | None:
        spec = self.spec(endpoint_id)
        if self.ctx.computes.pid(spec) is None:
            return None
        return RunningCompute(endpoint_id, str(spec.socket_dir), spec.port)

    def ensure_running(self, endpoint_id: str, *, pooled: bool = False) -> RunningCompute:
        """Start the endpoint's compute unless it runs; concurrent callers share one start."""
        with self.ctx.locks.wait_for(f"ep:{endpoint_id}"):
            spec = self.spec(endpoint_id)
            if self.ctx.computes.pid(spec) is None:
                spec = self._start(endpoint_id, spec)
            self.touch(endpoint_id)
            if not pooled:
                return RunningCompute(endpoint_id, str(spec.socket_dir), spec.port)
            return self._ensure_pooler(spec)

    def _start(self, endpoint_id: str, spec: ComputeSpec) -> ComputeSpec:
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.endpoints).where(t.endpoints.c.id == endpoint_id)).one()
            if row.disabled:
                raise Conflict(f"endpoint {endpoint_id} is disabled; enable it to connect")
            branch = conn.execute(select(t.branches.c.timeline_id, t.branches.c.state)
                                  .where(t.branches.c.id == row.branch_id)).one()
            op = self.oplog.begin(conn, row.project_id, OperationAction.START_COMPUTE,
                                  branch_id=row.branch_id, endpoint_id=endpoint_id)
        port = free_port()
        spec = replace(spec, port=port)
        try:
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.ctx.computes.start(spec)
            self.ctx.storage.recovery_finished(branch.timeline_id)
        except ArgonError as exc:
            self.oplog.fail(op, exc.message)
            raise
        except Exception as exc:  # noqa: BLE001 - recorded, then re-raised as ours
            self.oplog.fail(op, str(exc))
            raise ArgonError(f"compute {endpoint_id} failed to start: {exc}") from exc
        now = self.ctx.clock()
        with self.ctx.tx() as conn:
            conn.execute(update(t.endpoints).where(t.endpoints.c.id == endpoint_id).values(
                state=EndpointState.ACTIVE.value, compute_port=port, started_at=now,
                last_active=now, updated_at=now))
        self.oplog.finish(op)
        logger.info("started compute %s on port %d", endpoint_id, port)
        return spec

    def _ensure_pooler(self, spec: ComputeSpec) -> RunningCompute:
        poolers = self.ctx.poolers
        if poolers is None:
            raise ArgonError("pooled connections need PgBouncer: apt-get install pgbouncer")
        pspec = self.pooler_spec(spec)
        # start() keeps a running PgBouncer's port (or picks one) and reloads it when the
        # compute came back on another port.
        poolers.start(pspec)
        port = poolers.port(pspec)
        if port is None:
            raise ArgonError(f"PgBouncer for {spec.endpoint_id} did not start")
        return RunningCompute(spec.endpoint_id, str(pspec.socket_dir), port)

    def suspend(self, endpoint_id: str, *, reason: str = "request") -> bool:
        """Stop the compute (and its pooler).  Returns False if it was not running."""
        with self.ctx.locks.wait_for(f"ep:{endpoint_id}"):
            spec = self.spec(endpoint_id)
            was_running = self.ctx.computes.pid(spec) is not None
            with self.ctx.tx() as conn:
                row = conn.execute(select(t.endpoints.c.project_id, t.endpoints.c.branch_id)
                                   .where(t.endpoints.c.id == endpoint_id)).one()
                op = self.oplog.begin(conn, row.project_id, OperationAction.SUSPEND_COMPUTE,
                                      branch_id=row.branch_id, endpoint_id=endpoint_id)
            try:
                if self.ctx.poolers is not None:
                    self.ctx.poolers.stop(self.pooler_spec(spec))
                self.ctx.computes.stop(spec, "fast")
            except Exception as exc:
                self.oplog.fail(op, str(exc))
                raise
            now = self.ctx.clock()
            with self.ctx.tx() as conn:
                conn.execute(update(t.endpoints).where(t.endpoints.c.id == endpoint_id).values(
                    state=EndpointState.IDLE.value, suspended_at=now, updated_at=now))
            self.oplog.finish(op)
            if was_running:
                logger.info("suspended compute %s (%s)", endpoint_id, reason)
            return was_running

    def connect(self, endpoint_id: str, dbname: str = "postgres") -> psycopg.Connection:
        """A superuser connection to the running compute (started if needed)."""
        self.ensure_running(endpoint_id)
        return self.ctx.computes.connect(self.spec(endpoint_id), dbname=dbname)

    # -- activity ------------------------------------------------------------------------

    def touch(self, endpoint_id: str) -> None:
        with self._activity_lock:
            self._last_seen[endpoint_id] = time.monotonic()

    def touch_if_unseen(self, endpoint_id: str) -> None:
        with self._activity_lock:
            self._last_seen.setdefault(endpoint_id, time.monotonic())

    def session_started(self, endpoint_id: str) -> None:
        with self._activity_lock:
            self._sessions[endpoint_id] = self._sessions.get(endpoint_id, 0) + 1
            self._last_seen[endpoint_id] = time.monotonic()

    def session_ended(self, endpoint_id: str) -> None:
        with self._activity_lock:
            self._sessions[endpoint_id] = max(0, self._sessions.get(endpoint_id, 0) - 1)
            self._last_seen[endpoint_id] = time.monotonic()

    def idle_seconds(self, endpoint_id: str) -> float | None:
        """Seconds since the last activity Argon saw; None while sessions are open."""
        with self._activity_lock:
            if self._sessions.get(endpoint_id, 0) > 0:
                return None
            last = self._last_seen.get(endpoint_id)
        return None if last is None else time.monotonic() - last

