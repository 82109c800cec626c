"""Time travel in the control plane: points in a branch's history, temporary computes.

``TimeTravel`` turns a branch plus an LSN or timestamp into a child timeline (used by
branch creation and restore), checks the point against the branch's reachable range
before any work, and runs short-lived computes on timelines that have no endpoint of
their own (schema at a point, schema-only branches, time-travel queries).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from argon.compute import ComputeAddress, ComputeSpec
from argon.compute.backup import switch_wal
from argon.compute.spec import ComputeMode
from argon.control.context import ControlContext
from argon.control.runtime import EndpointRuntime
from argon.errors import InvalidInput, NotFound
from argon.meta import tables as t
from argon.pg import Lsn
from argon.storage.manifest import BranchPoint
from argon.storage.pitr import HistoryBounds, PointInTime, check_point, lsn_at

logger = logging.getLogger(__name__)

EPHEMERAL_PREFIX = "ep-tt-"


def parse_timestamp(text: str) -> datetime:
    """An ISO-8601 time with its zone (``2026-11-25T10:00:00Z``), as neonctl writes it."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{text!r} is not an ISO-8601 time, e.g. 2026-11-25T10:00:00Z"
                           ) from None
    if when.tzinfo is None:
        raise InvalidInput(f"time {text!r} needs a time zone, e.g. 2026-11-25T10:00:00Z")
    return when


def parse_point(lsn: str | None, timestamp: datetime | None) -> PointInTime | None:
    """Neon's pair of optional fields; giving both is an error, neither means the head."""
    if lsn is None and timestamp is None:
        return None
    if lsn is not None and timestamp is not None:
        raise InvalidInput("give either an LSN or a timestamp, not both")
    return PointInTime(lsn=Lsn.parse(lsn) if lsn is not None else None,
                       time=timestamp.astimezone(UTC) if timestamp is not None
                       and timestamp.tzinfo is not None else timestamp)


@dataclass(frozen=True)
class EphemeralCompute:
    """A temporary read-only compute at a past point (time-travel queries)."""

    id: str                # use as the endpoint id towards the proxy
    branch_id: str
    point: str
    address: ComputeAddress


class TimeTravel:
    def __init__(self, ctx: ControlContext, runtime: EndpointRuntime) -> None:
        self.ctx = ctx
        self.runtime = runtime
        self._ephemeral: dict[str, tuple[ComputeSpec, str]] = {}  # id -> spec, timeline
        self._lock = threading.Lock()

    # -- branching at a point ------------------------------------------------------------

    def branch_at(self, child_tl: str, source_row, source_ep: str | None,  # type: ignore[no-untyped-def]
                  point: PointInTime) -> BranchPoint:
        """Build ``child_tl`` from ``source_row``'s history at ``point`` (checked first)."""
        storage = self.ctx.storage
        # Before sealing the parent's WAL: that writes too, and the clone would fail anyway.
        storage.require_space_for_branch(source_row.timeline_id,
                                         f"go back to {point} on branch {source_row.name}")
        retention = self._retention(source_row.project_id)
        if source_ep is None:
            return self._branch_stopped(child_tl, source_row, point, retention)
        with self.ctx.locks.wait_for(f"ep:{source_ep}"):
            self.runtime.ensure_running(source_ep)
            spec = self.runtime.spec(source_ep)
            with self.ctx.computes.connect(spec) as conn:
                conn.autocommit = True
                sealed = switch_wal(conn)
            live = storage.seal_wal(source_row.timeline_id, sealed)
            self._check(source_row, point, live.head_lsn, retention)
            with storage.pin(source_row.timeline_id):
                return storage.branch_timeline_at(child_tl, source_row.timeline_id, point, live)

    def _branch_stopped(self, child_tl: str, source_row, point: PointInTime,  # type: ignore[no-untyped-def]
                        retention: int) -> BranchPoint:
        head = self.ctx.storage.stopped_head(source_row.timeline_id)
        self._check(source_row, point, head.lsn, retention)
        with self.ctx.storage.pin(source_row.timeline_id):
            return self.ctx.storage.branch_timeline_at(child_tl, source_row.timeline_id,
                                                       point, None)

    def _check(self, row, point: PointInTime, head: Lsn, retention: int) -> None:  # type: ignore[no-untyped-def]
        storage = self.ctx.storage
        manifest = storage.manifest(row.timeline_id)
        now = self.ctx.clock()
        window_start = now - timedelta(seconds=retention)
        if manifest.branch_point is not None:
            start_lsn, start_time = manifest.branch_point.lsn, manifest.branch_point.timestamp
        else:
            first = storage.reachable_from(row.timeline_id)
            start_lsn = first.lsn if first else Lsn(0)
            start_time = first.time if first else manifest.created_at
        check_point(point, HistoryBounds(
            name=f"branch {row.name}", start_lsn=start_lsn, start_time=start_time,
            head_lsn=head, window_start=window_start,
            window_start_lsn=lsn_at(storage.samples(row.timeline_id), window_start),
            now=now))

    def _retention(self, project_id: str) -> int:
        with self.ctx.tx() as conn:
            value = conn.execute(select(t.projects.c.history_retention_seconds).where(
                t.projects.c.id == project_id)).scalar()
        if value is None:
            raise NotFound(f"project {project_id!r} not found")
        return int(value)

    # -- temporary computes --------------------------------------------------------------

    def _spec(self, compute_id: str, timeline_id: str, pg_version: int,
              read_only: bool) -> ComputeSpec:
        # read-only: the static mode of the one compute model (a promoted throwaway clone
        # at the past point whose sessions start read-only); otherwise a primary
        password = self.runtime.admin_passwords.for_project(self._project_of(timeline_id))
        return ComputeSpec(endpoint_id=compute_id, timeline_id=timeline_id,
                           install=self.runtime.install_for(pg_version),
                           mode=ComputeMode.STATIC if read_only else ComputeMode.PRIMARY,
                           admin_password=password)

    def _project_of(self, timeline_id: str) -> str:
        """The project whose data a timeline holds: its branch's, or (a temporary child
        timeline has no branch) the nearest ancestor's."""
        current: str | None = timeline_id
        seen: set[str] = set()
        while current is not None and current not in seen:
            seen.add(current)
            with self.ctx.tx() as conn:
                project = conn.execute(select(t.branches.c.project_id).where(
                    t.branches.c.timeline_id == current)).scalar()
            if project is not None:
                return str(project)
            current = self.ctx.storage.manifest(current).parent_id
        raise NotFound(f"timeline {timeline_id} belongs to no project")

    @contextmanager
    def temporary_compute(self, timeline_id: str, pg_version: int, read_only: bool = False
                          ) -> Iterator[ComputeSpec]:
        """Run Postgres on a timeline that no endpoint uses, for the block's duration;
        yields its spec (connect with ``ctx.computes.connect(spec, dbname)``)."""
        spec = self._spec(f"ep-tmp-{uuid.uuid4().hex[:10]}", timeline_id, pg_version, read_only)
        address = self.ctx.computes.start(spec)
        self.ctx.storage.recovery_finished(timeline_id)
        running = replace(spec, port=address.port)
        try:
            yield running
        finally:
            self.ctx.computes.stop(running, "fast")

    def start_ephemeral(self, timeline_id: str, branch_id: str, point: str,
                        pg_version: int) -> EphemeralCompute:
        compute_id = f"{EPHEMERAL_PREFIX}{uuid.uuid4().hex[:10]}"
        spec = self._spec(compute_id, timeline_id, pg_version, read_only=True)
        address = self.ctx.computes.start(spec)
        self.ctx.storage.recovery_finished(timeline_id)
        running = replace(spec, port=address.port)
        with self._lock:
            self._ephemeral[compute_id] = (running, timeline_id)
        logger.info("started time-travel compute %s for %s at %s", compute_id, branch_id, point)
        return EphemeralCompute(compute_id, branch_id, point, address)

    def release_ephemeral(self, compute_id: str) -> bool:
        """Stop a time-travel compute and delete its timeline; False if unknown."""
        with self._lock:
            entry = self._ephemeral.pop(compute_id, None)
        if entry is None:
            return False
        spec, timeline_id = entry
        try:
            self.ctx.computes.stop(spec, "fast")
        finally:
            self.ctx.storage.delete_timeline(timeline_id)
        logger.info("released time-travel compute %s", compute_id)
        return True

    def ephemeral_spec(self, compute_id: str) -> ComputeSpec | None:
        with self._lock:
            entry = self._ephemeral.get(compute_id)
        return entry[0] if entry else None

    def ephemeral_ids(self) -> list[str]:
        with self._lock:
            return list(self._ephemeral)

    def ephemeral_timelines(self) -> set[str]:
        with self._lock:
            return {tl for _spec, tl in self._ephemeral.values()}

