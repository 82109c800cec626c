"""Figures Argon keeps per endpoint for the Monitoring page: a sampler and its reader.

Every ``monitoring_interval`` seconds (10 s by default) the sampler looks at each
endpoint.  A running compute gets one query on a connection the sampler keeps open
(connections, active sessions, transactions, rows written, WAL position, replay
position for replicas) and a read of /proc (CPU, memory); rates are deltas since the
previous sample.  A stopped compute is never woken or queried: it gets one ``idle`` row
when it stops, so the state history shows when it slept.  Rows older than the window
(7 days) are pruned.  Projects that export telemetry get each sample pushed over OTLP
(``otel_export.py``).  The sampler's own session is tagged ``argon``, which the idle
check ignores, so sampling never keeps a compute awake.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import delete, select

from argon.control import procstat
from argon.control.context import ControlContext
from argon.control.models import EndpointState
from argon.control.otel_export import ExportPoint, OtelExport
from argon.control.runtime import EndpointRuntime
from argon.errors import InvalidInput, NotFound
from argon.meta import tables as t

logger = logging.getLogger(__name__)

WINDOW = timedelta(days=7)
PRUNE_EVERY_SECONDS = 60.0
MAX_POINTS = 2000

_FIGURES = ("cpu_percent", "memory_bytes", "connections", "active_connections", "qps",
            "rows_written_per_s", "wal_bytes_per_s", "replica_lag_bytes")

# One query per endpoint per sample.  Argon's own sessions (application_name 'argon',
# this one included) are not counted as connections.
_SAMPLE_SQL = """
SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
          AND application_name IS DISTINCT FROM 'argon'),
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
          AND application_name IS DISTINCT FROM 'argon' AND state = 'active'),
       (SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database)::int8,
       (SELECT sum(tup_inserted + tup_updated + tup_deleted) FROM pg_stat_database)::int8,
       ((CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
              ELSE pg_current_wal_lsn() END) - '0/0'::pg_lsn)::int8,
       pg_is_in_recovery()"""


@dataclass
class _Last:
    """What the previous sample of one endpoint saw, for the deltas."""

    pid: int
    at: float
    cpu: float
    xacts: int
    rows: int
    wal: int


@dataclass
class _Reading:
    endpoint_id: str
    project_id: str
    branch_id: str
    type: str
    row: dict[str, Any]
    lsn: int | None = None
    cpu_seconds: float | None = None


class MonitoringSampler:
    def __init__(self, ctx: ControlContext, runtime: EndpointRuntime,
                 otel: OtelExport | None = None) -> None:
        self.ctx, self.runtime, self.otel = ctx, runtime, otel
        self._conns: dict[str, tuple[int, psycopg.Connection]] = {}   # endpoint -> pid, conn
        self._last: dict[str, _Last] = {}
        self._state: dict[str, str] = {}
        self._last_prune = float("-inf")   # monotonic: a fresh boot is near 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        return float(getattr(self.ctx.settings, "monitoring_interval", 10.0))

    def start(self) -> None:
        if self.interval <= 0:
            logger.info("monitoring sampler off (interval 0)")
            return
        self._thread = threading.Thread(target=self._loop, name="argon-monitoring",
                                        daemon=True)
        self._thread.start()
        if self.otel is not None:
            self.otel.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.otel is not None:
            self.otel.stop()
        for _pid, conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self.ctx.locks.leading:   # one sampler per metadata database
                    self.tick()
            except Exception:  # noqa: BLE001 - the loop must survive anything
                logger.exception("monitoring sample failed")

    # -- sampling ------------------------------------------------------------------------

    def tick(self) -> int:
        """Sample every endpoint once; returns how many rows were written."""
        with self.ctx.tx() as conn:
            eps = conn.execute(select(t.endpoints.c.id, t.endpoints.c.project_id,
                                      t.endpoints.c.branch_id, t.endpoints.c.type,
                                      t.endpoints.c.state)).all()
        known = {e.id for e in eps}
        for gone in [e for e in self._conns if e not in known]:
            self._drop(gone)
        readings: list[_Reading] = []
        for ep in eps:
            if ep.state != EndpointState.ACTIVE.value and self._state.get(ep.id) == "idle":
                continue   # asleep and recorded so: no look at its files at all
            try:
                spec = self.runtime.spec(ep.id)
                pid = self.ctx.computes.pid(spec)
                if pid is None:
                    self._drop(ep.id)
                    if self._state.get(ep.id) != "idle":
                        readings.append(_Reading(ep.id, ep.project_id, ep.branch_id, ep.type,
                                                 {"state": "idle"}))
                    continue
                reading = self._sample(ep, spec, pid)
                if reading is not None:
                    readings.append(reading)
            except Exception as exc:  # noqa: BLE001 - one endpoint never stops the others
                logger.info("endpoint %s: no monitoring sample: %s", ep.id, exc)
                self._drop(ep.id)
        self._replica_lag(readings)
        now = self.ctx.clock()
        if readings:
            with self.ctx.tx() as conn:
                conn.execute(t.endpoint_samples.insert(), [
                    {**dict.fromkeys(_FIGURES), "endpoint_id": r.endpoint_id,
                     "project_id": r.project_id, "at": now, **r.row} for r in readings])
        for r in readings:
            self._state[r.endpoint_id] = r.row["state"]
        if self.otel is not None:
            self.otel.submit([ExportPoint(r.project_id, r.endpoint_id, now, r.row, r.cpu_seconds)
                              for r in readings if r.row["state"] == "active"])
        if time.monotonic() - self._last_prune >= PRUNE_EVERY_SECONDS:
            self._last_prune = time.monotonic()
            self.prune(now - WINDOW)
        return len(readings)

    def _sample(self, ep: Any, spec: Any, pid: int) -> _Reading | None:
        held = self._conns.get(ep.id)
        if held is None or held[0] != pid or held[1].closed:
            self._drop(ep.id)
            held = (pid, self.ctx.computes.connect(spec))
            self._conns[ep.id] = held
        row = held[1].execute(_SAMPLE_SQL).fetchone()
        proc = procstat.instance(pid)
        if row is None or proc is None:
            return None
        conns, active, xacts, rows, lsn, in_recovery = row
        now = time.monotonic()
        last = self._last.get(ep.id)
        out: dict[str, Any] = {"state": "active", "connections": int(conns),
                               "active_connections": int(active),
                               "memory_bytes": proc.memory_bytes}
        if last is not None and last.pid == pid and now > last.at:
            dt = now - last.at
            out["cpu_percent"] = round(max(0.0, proc.cpu_seconds - last.cpu) / dt * 100, 2)
            # minus this sampler's own transaction per sample
            out["qps"] = round(max(0, int(xacts or 0) - last.xacts - 1) / dt, 3)
            out["rows_written_per_s"] = round(max(0, int(rows or 0) - last.rows) / dt, 3)
            out["wal_bytes_per_s"] = round(max(0, int(lsn or 0) - last.wal) / dt, 1)
        self._last[ep.id] = _Last(pid, now, proc.cpu_seconds, int(xacts or 0), int(rows or 0),
                                  int(lsn or 0))
        reading = _Reading(ep.id, ep.project_id, ep.branch_id, ep.type, out, int(lsn or 0),
                           proc.cpu_seconds)
        reading.row["_replica"] = bool(in_recovery)
        return reading

    @staticmethod
    def _replica_lag(readings: list[_Reading]) -> None:
        """Bytes a replica's replay is behind its branch's primary, both seen this tick."""
        primaries = {r.branch_id: r.lsn for r in readings
                     if r.lsn is not None and not r.row.get("_replica")}
        for r in readings:
            if r.row.pop("_replica", False) and r.lsn is not None:
                head = primaries.get(r.branch_id)
                r.row["replica_lag_bytes"] = max(0, head - r.lsn) if head is not None else None

    def _drop(self, endpoint_id: str) -> None:
        held = self._conns.pop(endpoint_id, None)
        self._last.pop(endpoint_id, None)
        if held is not None:
            try:
                held[1].close()
            except Exception:  # noqa: BLE001 - it is gone anyway
                pass

    def prune(self, before: datetime) -> int:
        with self.ctx.tx() as conn:
            res = conn.execute(delete(t.endpoint_samples).where(
                t.endpoint_samples.c.at < before))
        return int(res.rowcount or 0)

    # -- reading -------------------------------------------------------------------------

    def samples(self, project_id: str, endpoint_id: str, since: datetime | None = None,
                until: datetime | None = None, max_points: int = MAX_POINTS
                ) -> list[dict[str, Any]]:
        """The endpoint's samples in [since, until] (default: the last hour), oldest
        first, thinned evenly to at most ``max_points`` (idle rows always kept)."""
        now = self.ctx.clock()
        until = until or now
        since = since or until - timedelta(hours=1)
        for when, name in ((since, "from"), (until, "to")):
            if when.tzinfo is None:
                raise InvalidInput(f"'{name}' needs a time zone, e.g. 2026-11-25T10:00:00Z")
        if since >= until:
            raise InvalidInput("'from' must be before 'to'")
        if not 2 <= max_points <= MAX_POINTS:
            raise InvalidInput(f"max_points must be from 2 to {MAX_POINTS}")
        s = t.endpoint_samples
        with self.ctx.tx() as conn:
            owner = conn.execute(select(t.endpoints.c.project_id).where(
                t.endpoints.c.id == endpoint_id)).scalar()
            if owner != project_id:
                if conn.execute(select(s.c.id).where(s.c.endpoint_id == endpoint_id,
                                                     s.c.project_id == project_id)
                                .limit(1)).first() is None:
                    raise NotFound(f"endpoint {endpoint_id!r} not found in project "
                                   f"{project_id}")
            rows = conn.execute(select(s).where(
                s.c.endpoint_id == endpoint_id, s.c.at >= since, s.c.at <= until)
                .order_by(s.c.at)).all()
        step = max(1, -(-len(rows) // max_points))
        keep = [r for i, r in enumerate(rows) if i % step == 0 or r.state != "active"]
        return [{"at": r.at.isoformat().replace("+00:00", "Z"), "state": r.state,
                 **{f: getattr(r, f) for f in _FIGURES}} for r in keep]
