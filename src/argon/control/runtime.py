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
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import psycopg
from sqlalchemy import Connection, Row, or_, select, update

from argon.compute import ComputeAddress, ComputeSpec, PoolerSpec
from argon.compute.spec import ComputeMode
from argon.control.admin_password import AdminPasswords
from argon.control import compute_address, compute_runs, sql_roles
from argon.control.context import ControlContext
from argon.control.logical_replication import logical_replication_enabled
from argon.control.fast_wake import InParallel
from argon.control.pooler_roles import known_roles, refresh_poolers
from argon.control.models import EndpointState, OperationAction
from argon.control.operations import OperationLog
from argon.control.replicas import Replicas
from argon.errors import ArgonError, EndpointDisabled, NotFound
from argon.pg import PgInstall, choose_install
from argon.meta import tables as t

logger = logging.getLogger(__name__)


# Activity is stored in the metadata at most this often per endpoint and process (only
# when several Argon processes share it); readers allow for the gap.
ACTIVITY_WRITE = 2.0


def free_port(host: str = "127.0.0.1") -> int:
    """A free loopback port (the proxy's per-endpoint listeners in local mode)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RunningCompute:
    """A running endpoint and where to connect: its provider's (or pooler's) answer."""

    endpoint_id: str
    address: ComputeAddress

    @property
    def host(self) -> str:
        return self.address.host

    @property
    def port(self) -> int:
        return self.address.port


def _tell(ready: Callable[[ComputeAddress], None], address: ComputeAddress,
          endpoint_id: str) -> None:
    """Tell a waiting wake its address; its failure must not fail the start."""
    try:
        ready(address)
    except Exception as exc:  # noqa: BLE001 - the wake still gets the start's result
        logger.warning("compute %s: could not hand the address on early: %s",
                       endpoint_id, exc)


class EndpointRuntime:
    def __init__(self, ctx: ControlContext, oplog: OperationLog) -> None:
        self.ctx = ctx
        self.oplog = oplog
        self.admin_passwords = AdminPasswords(ctx.settings.home / "secrets")
        self._installs: dict[int, PgInstall] = {}
        self._installs_lock = threading.Lock()
        # activity seen outside Postgres' own view, by endpoint id: open sessions are
        # counted by the coordinator (seen by every Argon on the metadata), last seen here
        self._last_seen: dict[str, float] = {}
        self._activity_written: dict[str, float] = {}   # when last_active was last stored
        # starting or suspending: connections wait for the lock instead of the old route
        self._unavailable: set[str] = set()
        self._activity_lock = threading.Lock()
        # read_only endpoints: seeding, catching up, lag (control/replicas.py)
        self.replicas = Replicas(ctx, self)
        ctx.events.on_roles_changed(lambda branch_id: refresh_poolers(self, branch_id))

    # -- specs ---------------------------------------------------------------------------

    def install_for(self, pg_version: int) -> PgInstall:
        with self._installs_lock:
            if pg_version not in self._installs:
                self._installs[pg_version] = choose_install(pg_version).accessible_for(
                    self.ctx.owner.uid, self.ctx.settings.home / "pg")
            return self._installs[pg_version]

    def spec(self, endpoint_id: str, port: int | None = None) -> ComputeSpec:
        return self._read(endpoint_id, port)[0]

    def _read(self, endpoint_id: str, port: int | None = None) -> tuple[ComputeSpec, Row]:
        """The endpoint's spec and its row (state, recorded address, ids), in one query:
        the wake path reads nothing else before the spawn."""
        first_database = (select(t.databases.c.name)
                          .where(t.databases.c.branch_id == t.endpoints.c.branch_id)
                          .order_by(t.databases.c.id).limit(1).scalar_subquery())
        with self.ctx.tx() as conn:
            row = conn.execute(
                select(t.endpoints, t.branches.c.timeline_id, t.projects.c.pg_version,
                       t.projects.c.settings.label("project_settings"),
                       first_database.label("first_database"))
                .join(t.branches, t.branches.c.id == t.endpoints.c.branch_id)
                .join(t.projects, t.projects.c.id == t.endpoints.c.project_id)
                .where(t.endpoints.c.id == endpoint_id)).first()
        if row is None:
            raise NotFound(f"endpoint {endpoint_id!r} not found")
        return self._spec_of(row, port), row

    def _spec_of(self, row: Row, port: int | None) -> ComputeSpec:
        endpoint_id = row.id
        replica = row.type == "read_only"
        return ComputeSpec(
            endpoint_id=endpoint_id, timeline_id=row.timeline_id,
            # a replica runs on a copy of its own, seeded from the timeline
            copy=endpoint_id if replica else None,
            mode=ComputeMode.REPLICA if replica else ComputeMode.PRIMARY,
            install=self.install_for(row.pg_version),
            port=port or row.compute_port or 0,
            cu_min=row.min_cu, cu_max=row.max_cu,
            pg_settings=dict(row.pg_settings or {}),
            logical_replication=logical_replication_enabled(row.project_settings),
            admin_password=self.admin_passwords.for_project(row.project_id),
            warm_database=row.first_database or "postgres",
        )

    def pooler_spec(self, compute: ComputeSpec, upstream: ComputeAddress | None = None
                    ) -> PoolerSpec:
        """The pooler in front of ``compute`` at ``upstream`` (by default where it runs or
        will run); ``port`` 0: the pooler keeps its port or picks one."""
        if upstream is None:
            computes = self.ctx.computes
            upstream = computes.address(compute) or computes.expected_address(compute)
        if upstream is None:
            raise ArgonError(f"compute {compute.endpoint_id} has no address yet; start it")
        return PoolerSpec(endpoint_id=compute.endpoint_id, upstream=upstream,
                          admin_password=compute.admin_password,
                          roles=known_roles(self, compute.endpoint_id))

    def pooler_key(self, endpoint_id: str) -> PoolerSpec:
        """Enough of a pooler spec to find, or stop, the endpoint's running pooler."""
        return PoolerSpec(endpoint_id=endpoint_id, upstream=ComputeAddress("", 0))

    # -- state changes -------------------------------------------------------------------

    def running(self, endpoint_id: str) -> RunningCompute | None:
        address = self.ctx.computes.address(self.spec(endpoint_id))
        return None if address is None else RunningCompute(endpoint_id, address)

    def ensure_running(self, endpoint_id: str, *, pooled: bool = False,
                       before_start: Callable[[], None] | None = None,
                       activity: bool = True,
                       ready: Callable[[ComputeAddress], None] | None = None
                       ) -> RunningCompute:
        """Start the endpoint's compute unless it runs; concurrent callers share one start.

        A running compute is answered without the endpoint's lock: branching and time
        travel hold that lock for long, and must not block new sessions.  The lock is
        taken only to start one (and by suspend), and ``before_start`` (the proxy's wake
        rate limit) runs under it only when a start is really needed.  ``activity``
        False (the reconciler restarting a crashed compute) does not count as use, so a
        compute that keeps crashing is not kept "in use" by its own restarts.

        ``ready`` (the proxy's wake) is told the address (the pooler's when ``pooled``)
        as soon as a start lets client sessions in, while the start still checks
        cloud_admin's password and records itself (see ``_start``); not called when no
        start was needed.
        """
        spec, row = self._read(endpoint_id)
        available = self.claim(endpoint_id) if activity else self.available(endpoint_id)
        address = self._address(spec, row) if available else None
        if address is None:
            with self.ctx.locks.wait_for(f"ep:{endpoint_id}"):
                spec, row = self._read(endpoint_id)
                address = self._address(spec, row)
                if address is None:
                    if before_start is not None:
                        before_start()
                    spec, address = self._start_unavailable(endpoint_id, spec, row,
                                                            pooled=pooled, ready=ready)
                if activity:
                    self.touch(endpoint_id)
        if not pooled:
            return RunningCompute(endpoint_id, address)
        return self._ensure_pooler(spec, address)

    def _address(self, spec: ComputeSpec, row: Row) -> ComputeAddress | None:
        """Where the compute runs: as this process's provider sees it, else as another
        Argon process on the same metadata recorded it in ``row`` (when it answers)."""
        return (self.ctx.computes.address(spec)
                or compute_address.live(compute_address.recorded_in(row)))

    def _start_unavailable(self, endpoint_id: str, spec: ComputeSpec, row: Row, *,
                           pooled: bool = False,
                           ready: Callable[[ComputeAddress], None] | None = None
                           ) -> tuple[ComputeSpec, ComputeAddress]:
        # The same socket answers "the database system is starting up" until the start
        # returns: cached routes are dropped and connections wait for the lock meanwhile.
        with self._activity_lock:
            self._unavailable.add(endpoint_id)
        self.ctx.events.compute_changed(endpoint_id)
        try:
            return self._start(endpoint_id, spec, row, pooled=pooled, ready=ready)
        finally:
            with self._activity_lock:
                self._unavailable.discard(endpoint_id)

    def _start(self, endpoint_id: str, spec: ComputeSpec, row: Row, *, pooled: bool = False,
               ready: Callable[[ComputeAddress], None] | None = None
               ) -> tuple[ComputeSpec, ComputeAddress]:
        """Start the compute of ``row`` (read under the endpoint's lock, with ``spec``)."""
        if row.disabled:
            raise EndpointDisabled(f"endpoint {endpoint_id} is disabled; enable it to connect")
        # The operation and the endpoint's "active" state are recorded beside the spawn,
        # not before it (a commit is a few ms of a wake), and before the client is let
        # in (it may ask the API next): a crash before they commit leaves a running
        # compute and no operation, which the start-up repair re-adopts like any compute
        # found running; one after leaves "active" and no compute, which it marks idle.
        op_record = InParallel(f"start operation of {endpoint_id}",
                               lambda: self._begin_start_operation(row), log_failure=False)
        # The same address as last time when the provider can: PgBouncer (and anything
        # else that remembered it) finds the compute again after a restart or a crash.
        spec = self.ctx.computes.reserve_address(spec)
        expected = self.ctx.computes.expected_address(spec)
        # a pooled wake starts PgBouncer beside Postgres, not after it (fast_wake.py)
        pooler = InParallel(f"pooler {endpoint_id}",
                            lambda: self._ensure_pooler(spec, expected),
                            enabled=(pooled and self.ctx.poolers is not None
                                     and expected is not None))
        told: list[ComputeAddress] = []

        def tell_once(at: ComputeAddress) -> None:
            """The wake's client may log in: directly, or through a PgBouncer already
            pointed at the compute (it checks proxied roles itself: pooler_roles.py)."""
            if ready is None or told:
                return
            op_record.wait()
            if op_record.result is None:
                return   # not recorded: the start fails in _started_operation
            if pooled:
                pooler.wait()
                if at != expected or pooler.result is None:
                    return   # told after the start, once the pooler follows it
                at = pooler.result.address
            told.append(at)
            _tell(ready, at, endpoint_id)
        try:
            if spec.mode is ComputeMode.REPLICA:
                spec, address = self.replicas.start(endpoint_id, spec)
            else:
                # the wake's client logs in while the start finishes its checks
                address = self.ctx.computes.start(spec, ready=None if ready is None
                                                  else tell_once)
                self.ctx.storage.recovery_finished(row.timeline_id)
        except ArgonError as exc:
            logger.warning("compute %s failed to start: %s", endpoint_id, exc.message)
            self._fail_start_operation(op_record, row, exc.message)
            if isinstance(exc, NotFound):   # e.g. a missing data directory: not a 404
                raise ArgonError(f"compute {endpoint_id} failed to start: {exc.message}"
                                 ) from exc
            raise
        except Exception as exc:  # noqa: BLE001 - recorded, then re-raised as ours
            logger.warning("compute %s failed to start: %s", endpoint_id, exc)
            self._fail_start_operation(op_record, row, str(exc))
            raise ArgonError(f"compute {endpoint_id} failed to start: {exc}") from exc
        finally:
            pooler.wait()
        if ready is not None:
            tell_once(address)
        # Recorded after the client was let in: a crash from here on leaves a running
        # compute that the start-up repair re-adopts (repair.py), as a crash between the
        # spawn and these writes always did.
        port = address.port
        spec = replace(spec, port=port)
        op = self._started_operation(op_record)
        now = self.ctx.clock()

        def record_running(conn: Connection) -> None:
            conn.execute(update(t.endpoints).where(t.endpoints.c.id == endpoint_id).values(
                state=EndpointState.ACTIVE.value, started_at=now, last_active=now,
                updated_at=now, **compute_address.recorded_values(address)))
            compute_runs.opened(conn, endpoint_id, row.project_id, row.branch_id,
                                row.max_cu, now)
        self.oplog.finish(op, also=record_running)
        logger.info("started compute %s on port %d (%s)", endpoint_id, port, address.host)
        self._reload_pooler(spec, address)
        if spec.mode is ComputeMode.PRIMARY:
            self.replicas.primary_started(endpoint_id, (row.branch_id, row.timeline_id))
        self.ctx.events.compute_started(endpoint_id, address)
        return spec, address

    def _begin_start_operation(self, row: Row) -> str:
        """Record the start: its operation, and the endpoint as "active" (the address
        and the compute run follow once it runs)."""
        with self.ctx.tx() as conn:
            conn.execute(update(t.endpoints).where(t.endpoints.c.id == row.id).values(
                state=EndpointState.ACTIVE.value, updated_at=self.ctx.clock()))
            return self.oplog.begin(conn, row.project_id, OperationAction.START_COMPUTE,
                                    branch_id=row.branch_id, endpoint_id=row.id)

    def _started_operation(self, op_record: InParallel[str]) -> str:
        """The start's operation once recorded; its failure (the metadata cannot be
        written) fails the start, as it did when it was written before the spawn: the
        compute left running is re-adopted by the next start or the start-up repair."""
        op_record.wait()
        if op_record.result is None:
            raise ArgonError(f"could not record the start of the compute: {op_record.error}")
        return op_record.result

    def _fail_start_operation(self, op_record: InParallel[str], row: Row, error: str
                              ) -> None:
        """The start failed: its operation is marked failed, the endpoint's state put
        back to what it was before the start recorded it "active"."""
        op_record.wait()
        if op_record.result is not None:
            self.oplog.fail(op_record.result, error, also=lambda conn: conn.execute(
                update(t.endpoints).where(t.endpoints.c.id == row.id)
                .values(state=row.state, updated_at=self.ctx.clock())))
        else:
            logger.warning("could not record the failed start either: %s", op_record.error)

    def _reload_pooler(self, spec: ComputeSpec, address: ComputeAddress) -> None:
        """Point a running PgBouncer at the compute that just started, at once: its open
        client sessions must not wait for the next pooled connection to learn it."""
        poolers = self.ctx.poolers
        if poolers is None:
            return
        pspec = self.pooler_spec(spec, address)
        try:
            with self.ctx.locks.wait_for(f"pooler:{spec.endpoint_id}"):
                if poolers.pid(pspec) is not None:
                    poolers.start(pspec)   # rewrites the ini and reloads if it changed
        except Exception as exc:  # noqa: BLE001 - the next pooled connection retries
            logger.warning("pooler %s: reload after a compute start failed: %s",
                           spec.endpoint_id, exc)

    def _ensure_pooler(self, spec: ComputeSpec, upstream: ComputeAddress | None
                       ) -> RunningCompute:
        poolers = self.ctx.poolers
        if poolers is None:
            raise ArgonError("pooled connections need PgBouncer: apt-get install pgbouncer")
        pspec = self.pooler_spec(spec, upstream)
        # start() keeps a running PgBouncer's port (or picks one) and reloads it when the
        # compute came back on another port.  Its own lock, not the endpoint's: a pooled
        # connection to a running compute must not wait for a branch of it.
        with self.ctx.locks.wait_for(f"pooler:{spec.endpoint_id}"):
            pooled = poolers.start(pspec)
        return RunningCompute(spec.endpoint_id, pooled)

    def suspend(self, endpoint_id: str, *, reason: str = "request",
                idle_limit: float | None = None) -> bool:
        """Stop the compute (and its pooler).  Returns False if it was not stopped.

        With ``idle_limit`` (the reconciler) the compute is stopped only if it is still
        idle under the lock: no client sessions, no proxy sessions, and no activity for
        ``idle_limit`` seconds; a client that arrived meanwhile keeps it running.
        """
        with self.ctx.locks.wait_for(f"ep:{endpoint_id}"):
            spec = self.spec(endpoint_id)
            was_running = self.ctx.computes.pid(spec) is not None
            if not was_running and compute_address.live_recorded(self.ctx, endpoint_id):
                return False   # another Argon process's compute: not ours to stop
            if idle_limit is not None and not (was_running
                                               and self._still_idle(endpoint_id, spec,
                                                                    idle_limit)):
                return False
            with self._activity_lock:
                self._unavailable.add(endpoint_id)
            try:
                return self._stop(endpoint_id, spec, was_running, reason)
            finally:
                with self._activity_lock:
                    self._unavailable.discard(endpoint_id)
                self.ctx.events.compute_changed(endpoint_id)

    def _still_idle(self, endpoint_id: str, spec: ComputeSpec, limit: float) -> bool:
        # another Argon's sessions and activity first: they need no backend of the compute
        if self.ctx.locks.has_sessions(endpoint_id):
            return False
        stored = self._stored_idle(endpoint_id)
        if stored is not None and stored < limit:
            return False
        if self.ctx.computes.client_sessions(spec) > 0:
            self.touch(endpoint_id)
            return False
        with self._activity_lock:
            if self.ctx.locks.has_sessions(endpoint_id, anywhere=False):
                return False
            last = self._last_seen.get(endpoint_id)
            if last is None or time.monotonic() - last < limit:
                return False
            # decided: from here on new connections wait for the lock (and a new start)
            self._unavailable.add(endpoint_id)
            return True

    def _stop(self, endpoint_id: str, spec: ComputeSpec, was_running: bool,
              reason: str) -> bool:
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.endpoints.c.project_id, t.endpoints.c.branch_id)
                               .where(t.endpoints.c.id == endpoint_id)).one()
            op = self.oplog.begin(conn, row.project_id, OperationAction.SUSPEND_COMPUTE,
                                  branch_id=row.branch_id, endpoint_id=endpoint_id)
        if was_running:
            self.sync_sql_roles(endpoint_id, spec, row.branch_id)
        try:
            if self.ctx.poolers is not None:
                with self.ctx.locks.wait_for(f"pooler:{endpoint_id}"):
                    self.ctx.poolers.stop(self.pooler_key(endpoint_id))
            self.ctx.computes.stop(spec, "fast")
        except Exception as exc:
            self.oplog.fail(op, str(exc))
            raise
        now = self.ctx.clock()

        def record_idle(conn: Connection) -> None:
            conn.execute(update(t.endpoints).where(t.endpoints.c.id == endpoint_id).values(
                state=EndpointState.IDLE.value, suspended_at=now, updated_at=now,
                **compute_address.CLEARED))
            compute_runs.closed(conn, endpoint_id, now)
        self.oplog.finish(op, also=record_idle)
        if was_running:
            logger.info("suspended compute %s (%s)", endpoint_id, reason)
        return was_running

    def sync_sql_roles(self, endpoint_id: str, spec: ComputeSpec | None = None,
                       branch_id: str | None = None) -> bool:
        """Copy the SCRAM verifiers of roles made with SQL out of the running compute, so
        the proxy authenticates them while it sleeps; True when they changed."""
        spec = spec or self.spec(endpoint_id)
        try:
            if branch_id is None:
                with self.ctx.tx() as conn:
                    branch_id = conn.execute(select(t.endpoints.c.branch_id).where(
                        t.endpoints.c.id == endpoint_id)).scalar_one()
            with self.ctx.computes.connect(spec) as pg:
                secrets = sql_roles.read_login_secrets(pg)
            with self.ctx.tx() as conn:
                changed = sql_roles.store(conn, branch_id, secrets, self.ctx.clock())
        except Exception as exc:  # noqa: BLE001 - a sync is retried; never blocks a stop
            logger.warning("compute %s: could not sync SQL roles: %s", endpoint_id, exc)
            return False
        if changed:
            self.ctx.events.roles_changed(branch_id)
        return changed

    def connect(self, endpoint_id: str, dbname: str = "postgres") -> psycopg.Connection:
        """A superuser connection to the running compute (started if needed)."""
        self.ensure_running(endpoint_id)
        return self.ctx.computes.connect(self.spec(endpoint_id), dbname=dbname)

    # -- activity ------------------------------------------------------------------------

    def claim(self, endpoint_id: str) -> bool:
        """A connection is about to use the running compute: counts as activity, so an
        idle check that has not decided yet keeps the compute.  False while a start or a
        suspend is under way: the caller must wait for the lock instead."""
        with self._activity_lock:
            if endpoint_id in self._unavailable:
                return False
            self._last_seen[endpoint_id] = time.monotonic()
            return True

    def available(self, endpoint_id: str) -> bool:
        """Not starting or suspending (its cached route can be used); not activity."""
        with self._activity_lock:
            return endpoint_id not in self._unavailable

    def touch(self, endpoint_id: str) -> None:
        with self._activity_lock:
            self._last_seen[endpoint_id] = time.monotonic()

    def touch_if_unseen(self, endpoint_id: str) -> None:
        with self._activity_lock:
            self._last_seen.setdefault(endpoint_id, time.monotonic())

    def session_started(self, endpoint_id: str) -> None:
        self.ctx.locks.sessions_opened(endpoint_id)
        self._seen(endpoint_id)

    def session_ended(self, endpoint_id: str) -> None:
        self.ctx.locks.sessions_closed(endpoint_id)
        self._seen(endpoint_id)

    def _seen(self, endpoint_id: str) -> None:
        """Activity now; stored in the metadata too (at most every ``ACTIVITY_WRITE``
        seconds per endpoint) when other processes decide on idleness from it.  The
        write runs in a thread of its own: the proxy calls this on its event loop."""
        now = time.monotonic()
        with self._activity_lock:
            self._last_seen[endpoint_id] = now
            if (not self.ctx.locks.shared_across_processes
                    or now - self._activity_written.get(endpoint_id, -ACTIVITY_WRITE)
                    < ACTIVITY_WRITE):
                return
            self._activity_written[endpoint_id] = now
        threading.Thread(target=self._store_activity, args=(endpoint_id, self.ctx.clock()),
                         name="argon-activity", daemon=True).start()

    def _store_activity(self, endpoint_id: str, at: datetime) -> None:
        try:
            with self.ctx.tx() as conn:
                conn.execute(update(t.endpoints).where(
                    t.endpoints.c.id == endpoint_id,
                    or_(t.endpoints.c.last_active.is_(None), t.endpoints.c.last_active < at))
                    .values(last_active=at))
        except Exception as exc:  # noqa: BLE001 - never fails a session; written next time
            with self._activity_lock:
                self._activity_written.pop(endpoint_id, None)
            logger.warning("endpoint %s: could not record its activity: %s", endpoint_id, exc)

    def recently_active(self, endpoint_id: str, within: float) -> bool:
        """Sessions open (in any Argon process), or activity in the last ``within``
        seconds (seen here or stored by another process)."""
        if self.ctx.locks.has_sessions(endpoint_id):
            return True
        with self._activity_lock:
            last = self._last_seen.get(endpoint_id)
        if last is not None and time.monotonic() - last < within:
            return True
        stored = self._stored_idle(endpoint_id)
        return stored is not None and stored < within

    def idle_seconds(self, endpoint_id: str, last_active: datetime | None = None
                     ) -> float | None:
        """Seconds since the last activity Argon saw (here, or stored as ``last_active``
        by another process); None while this process has sessions open, or has not
        seen the endpoint yet.  Sessions of other processes: ``has_sessions``."""
        if self.ctx.locks.has_sessions(endpoint_id, anywhere=False):
            return None
        with self._activity_lock:
            last = self._last_seen.get(endpoint_id)
        if last is None:
            return None
        idle = time.monotonic() - last
        stored = self._idle_since(last_active)
        return idle if stored is None else min(idle, stored)

    def has_sessions(self, endpoint_id: str) -> bool:
        """Sessions open on the endpoint, in this or any other Argon process."""
        return self.ctx.locks.has_sessions(endpoint_id)

    def _stored_idle(self, endpoint_id: str) -> float | None:
        """``_idle_since`` the endpoint's stored last_active (one metadata query; only
        asked when several processes share the metadata)."""
        if not self.ctx.locks.shared_across_processes:
            return None
        with self.ctx.tx() as conn:
            last_active = conn.execute(select(t.endpoints.c.last_active).where(
                t.endpoints.c.id == endpoint_id)).scalar()
        return self._idle_since(last_active)

    def _idle_since(self, last_active: datetime | None) -> float | None:
        """Idle seconds a stored last_active proves, at the least: writes are throttled,
        so activity up to ``ACTIVITY_WRITE`` s after it may be unrecorded.  None when
        the metadata is this process's alone (its own view is complete)."""
        if last_active is None or not self.ctx.locks.shared_across_processes:
            return None
        return (self.ctx.clock() - last_active).total_seconds() - ACTIVITY_WRITE
