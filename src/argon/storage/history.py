"""Storage's history side: snapshots, branching at a past point, sealing live WAL.

A mixin of ``Storage`` (same object, same paths) kept apart so that ``timelines.py``
stays about a timeline's lifecycle and this file about its past.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from argon.errors import Conflict, Unavailable
from argon.pg import Lsn
from argon.storage.branching import CloneJob, branch_running, ensure_stopped
from argon.storage.conf import RecoveryTarget, TargetKind, write_storage_conf
from argon.storage.gc import GcPlan, execute_gc, gather_facts, plan_gc
from argon.storage.interfaces import RunningBackup, SealedWal
from argon.storage.manifest import BranchPoint, TimelineManifest, TimelineState, write_manifest
from argon.storage.pitr import ChainLink, PointInTime, choose_snapshot, lsn_at
from argon.storage.snapshots import (
    Snapshot,
    append_sample,
    list_snapshots,
    publish,
    read_samples,
    snapshot_pgdata,
    staging_dir,
)
from argon.storage.tree import CloneRules, clone_tree
from argon.storage.wal import is_history_name, is_segment_name, read_control_file, segment_number
from argon.storage.durability import syncfs

if TYPE_CHECKING:
    from argon.storage.timelines import Storage

logger = logging.getLogger(__name__)

ARCHIVE_WAIT_SECONDS = 60.0
_SNAPSHOT_RULES = CloneRules(keep_wal=True, keep_backup_files=True)


@dataclass(frozen=True)
class LiveHead:
    """A running timeline whose WAL up to ``head_lsn`` is archived (see ``seal_wal``)."""

    head_lsn: Lsn
    pg_timeline: int
    time: datetime


@dataclass(frozen=True)
class TimelineHead:
    lsn: Lsn
    pg_timeline: int
    running: bool
    stopped_at: datetime | None   # a stopped timeline's shutdown time


class HistoryMixin:
    # -- reads -------------------------------------------------------------------------

    def snapshots(self: Storage, timeline_id: str) -> list[Snapshot]:
        return list_snapshots(self._dir(timeline_id), timeline_id)

    def samples(self: Storage, timeline_id: str) -> list[tuple[datetime, Lsn]]:
        return read_samples(self._dir(timeline_id))

    def record_sample(self: Storage, timeline_id: str, when: datetime, lsn: Lsn) -> None:
        append_sample(self._dir(timeline_id), when, lsn)

    def chain(self: Storage, timeline_id: str) -> list[ChainLink]:
        """The timeline and its ancestors, nearest first, with where the chain left each."""
        links = [ChainLink(timeline_id, self.snapshots(timeline_id), None)]
        current = self.manifest(timeline_id)
        for ancestor in self._ancestors(timeline_id):
            bp = current.branch_point
            limit = bp.lsn if bp is not None else Lsn(0)
            links.append(ChainLink(ancestor, self.snapshots(ancestor), limit))
            current = self.manifest(ancestor)
        return links

    def stopped_head(self: Storage, timeline_id: str) -> TimelineHead:
        """Where a stopped timeline's WAL ends (its last checkpoint)."""
        pgdata = self.pgdata(timeline_id)
        ensure_stopped(pgdata)
        facts = read_control_file(pgdata)
        return TimelineHead(facts.checkpoint, facts.timeline, False,
                            datetime.fromtimestamp(facts.time, UTC))

    def reachable_from(self: Storage, timeline_id: str) -> Snapshot | None:
        """The oldest snapshot the timeline's history can still be replayed from."""
        for link in reversed(self.chain(timeline_id)):
            ok = [s for s in link.snapshots if link.max_lsn is None or s.lsn <= link.max_lsn]
            if ok:
                return ok[0]
        return None

    def pin(self: Storage, *timeline_ids: str) -> AbstractContextManager[None]:
        """Keep GC away from these timelines' history while a restore or branch uses it."""
        return self.pins.pin(*timeline_ids)

    def collect_garbage(self: Storage, timeline_ids: list[str],
                        window_starts: dict[str, datetime], pinned: set[str],
                        dry_run: bool = False) -> GcPlan:
        """Plan and (unless ``dry_run``) run history GC over these timelines, which must
        be every live timeline (a missing child would lose its branch point)."""
        pinned = pinned | self.pins.pinned(timeline_ids)
        plan = plan_gc(gather_facts(self, timeline_ids, window_starts, pinned))
        if not dry_run:
            execute_gc(self, plan)
            if self.snapshot_sync is not None:   # the bucket's copies follow the same rule
                self.snapshot_sync.run_gc(timeline_ids, window_starts, pinned)
        return plan

    # -- snapshots ---------------------------------------------------------------------

    def _snapshot_from(self: Storage, timeline_id: str, src: Path, snap: Snapshot,
                       link_from: Path | None = None) -> bool:
        tdir = self._dir(timeline_id)
        staging = staging_dir(tdir, uuid.uuid4().hex[:12])
        try:
            clone_tree(src, staging / "pgdata", self.driver, self.owner, _SNAPSHOT_RULES,
                       link_from=link_from)
            for name in ("argon.storage.conf", "recovery.signal"):
                (staging / "pgdata" / name).unlink(missing_ok=True)
            made = publish(tdir, staging, snap)
        except BaseException:
            import shutil
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if made:
            logger.info("snapshot of %s at %s (%s)", timeline_id, snap.lsn, snap.kind)
            if self.snapshot_sync is not None:
                self.snapshot_sync.wake()
        return made

    def snapshot_running(self: Storage, timeline_id: str, backup: RunningBackup) -> Snapshot:
        """A backup-API snapshot of a running timeline (its clients are not blocked).

        Refused (``InsufficientStorage``) when the disk lacks room for the copy: a
        background chore must not take the last space, nor start a backup (whose
        checkpoint can PANIC the compute) on a nearly full disk."""
        self.require_space_for_branch(timeline_id, f"snapshot timeline {timeline_id}")
        tdir = self._dir(timeline_id)
        staging = staging_dir(tdir, uuid.uuid4().hex[:12])
        try:
            job = CloneJob(src=self.pgdata(timeline_id), dst=staging / "pgdata",
                           wal_sources=(self.pgdata(timeline_id) / "pg_wal",
                                        *self._restore_dirs(timeline_id)),
                           driver=self.driver, owner=self.owner)
            prepared = branch_running(job, f"argon snapshot {timeline_id}", backup)
            point = prepared.point
            snap = Snapshot(timeline_id, point.lsn, point.pg_timeline, point.timestamp, "backup")
            publish(tdir, staging, snap)
        except BaseException:
            import shutil
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.record_sample(timeline_id, snap.time, snap.lsn)
        logger.info("snapshot of running %s at %s", timeline_id, snap.lsn)
        if self.snapshot_sync is not None:   # uploaded in the background, nobody waits
            self.snapshot_sync.wake()
        return snap

    # -- sealing live WAL --------------------------------------------------------------

    def seal_wal(self: Storage, timeline_id: str, sealed: SealedWal,
                 timeout: float = ARCHIVE_WAIT_SECONDS) -> LiveHead:
        """Make a running timeline's past reachable from its archive right now: the
        compute switched its WAL after the head (``compute.backup.switch_wal``); wait
        until the archiver has stored the finished segment."""
        head, now, tli = sealed.head, sealed.time, sealed.pg_timeline
        last = sealed.last_segment
        archived = self.archive_dir(timeline_id) / last
        deadline = time.monotonic() + timeout
        while not archived.exists():
            if time.monotonic() > deadline:
                raise Unavailable(f"WAL segment {last} of {timeline_id} was not archived within "
                                  f"{timeout:.0f} s; check the compute's log for archiver "
                                  "errors, then retry")
            time.sleep(0.02)
        self.record_sample(timeline_id, now, head)
        return LiveHead(head, tli, now)

    # -- branching at a point ------------------------------------------------------------

    def branch_timeline_at(self: Storage, child_id: str, parent_id: str, point: PointInTime,
                           live: LiveHead | None) -> BranchPoint:
        """A child of ``parent_id`` holding exactly what was committed at ``point``.

        ``live`` is given when the parent runs and its WAL was sealed; otherwise the
        parent must be stopped, and a point at or after its last checkpoint is its head.
        """
        parent = self.manifest(parent_id)
        if parent.state is not TimelineState.READY:
            raise Conflict(f"timeline {parent_id} is still being created; retry when ready")
        if live is None:
            head = self.stopped_head(parent_id)
            at_head = ((point.lsn is not None and point.lsn >= head.lsn) or
                       (point.time is not None and head.stopped_at is not None
                        and point.time >= head.stopped_at))
            if at_head:
                return self.branch_timeline(child_id, parent_id, None)
            pg_timeline = head.pg_timeline
        else:
            pg_timeline = live.pg_timeline
        snap = choose_snapshot(self.chain(parent_id), point)
        if snap is None:
            raise Unavailable(f"no snapshot at or before {point} is left for timeline "
                              f"{parent_id} (history was garbage-collected); choose a later "
                              "point")
        tdir = self._begin(child_id, parent_id=parent_id)
        with self._undone_on_error(tdir, f"branch timeline {parent_id} at {point}"):
            pgdata = tdir / "pgdata"
            clone_tree(snapshot_pgdata(self._dir(snap.timeline_id), snap), pgdata,
                       self.driver, self.owner, _SNAPSHOT_RULES)
            job = CloneJob(src=self.pgdata(parent_id), dst=pgdata, wal_sources=(),
                           driver=self.driver, owner=self.owner)
            self._copy_history_files(job)
            if live is None:
                self._copy_unarchived_tail(parent_id, pgdata, pg_timeline)
            if point.lsn is not None:
                # Not inclusive: stop before the first record that starts at or after the
                # LSN, i.e. keep every record that ended by it.
                target = RecoveryTarget(TargetKind.LSN, lsn=point.lsn, inclusive=False,
                                        timeline=pg_timeline)
                when = _time_of(self.samples(parent_id), point.lsn) or snap.time
                bp = BranchPoint(point.lsn, pg_timeline, max(when, snap.time))
            else:
                assert point.time is not None
                target = RecoveryTarget(TargetKind.TIME, time=point.time, inclusive=True,
                                        timeline=pg_timeline)
                bp = BranchPoint(snap.lsn, pg_timeline, point.time.astimezone(UTC))
            write_storage_conf(pgdata, self._conf(child_id, target), self.owner)
            (pgdata / "recovery.signal").touch(mode=0o600)
            self.owner.chown(pgdata / "recovery.signal")
            syncfs(tdir)
            manifest = self.manifest(child_id)
            write_manifest(tdir, TimelineManifest(
                id=child_id, parent_id=parent_id, branch_point=bp,
                state=TimelineState.READY, driver=self.driver.name,
                created_at=manifest.created_at, recovery_pending=True,
                branch_lsn_exact=point.lsn is not None))
        logger.info("branched timeline %s from %s at %s (snapshot %s on %s)", child_id,
                    parent_id, point, snap.lsn, snap.timeline_id)
        return bp

    def _copy_history_files(self: Storage, job: CloneJob) -> None:
        for src_dir in (job.src / "pg_wal", *self._restore_dirs(job.src.parent.name)):
            try:
                entries = list(os.scandir(src_dir))
            except FileNotFoundError:
                continue
            for entry in entries:
                target = job.dst / "pg_wal" / entry.name
                if is_history_name(entry.name) and not target.exists():
                    self._clone_owned(Path(entry.path), target)

    def _copy_unarchived_tail(self: Storage, timeline_id: str, pgdata: Path,
                              pg_timeline: int) -> None:
        """A stopped timeline's last segments may only be in its pg_wal (Postgres does
        not archive a partial segment at shutdown)."""
        src_wal = self.pgdata(timeline_id) / "pg_wal"
        archive = self.archive_dir(timeline_id)
        facts = read_control_file(self.pgdata(timeline_id))
        seg_size = _segment_size_of(src_wal)
        if seg_size is None:
            return
        last = (int(facts.checkpoint) + 512) // seg_size
        for entry in os.scandir(src_wal):
            if not is_segment_name(entry.name) or (archive / entry.name).exists():
                continue
            tli, segno = segment_number(entry.name, seg_size)
            if tli == pg_timeline and segno <= last:
                self._clone_owned(Path(entry.path), pgdata / "pg_wal" / entry.name)

    def _clone_owned(self: Storage, src: Path, dst: Path) -> None:
        self.driver.clone_file(src, dst)
        os.chmod(dst, 0o600)
        self.owner.chown(dst)

    def exact_branch_lsn(self: Storage, timeline_id: str) -> Lsn | None:
        """After a time-target branch recovered: where it left its parent's timeline
        (the last line of its newest timeline history file)."""
        wal = self.pgdata(timeline_id) / "pg_wal"
        names = sorted(n for n in os.listdir(wal) if is_history_name(n))
        if not names:
            return None
        lines = [ln for ln in (wal / names[-1]).read_text().splitlines()
                 if ln.strip() and not ln.startswith("#")]
        if not lines:
            return None
        return Lsn.parse(lines[-1].split()[1])


def _time_of(samples: list[tuple[datetime, Lsn]], lsn: Lsn) -> datetime | None:
    best: datetime | None = None
    for t, s in samples:
        if s <= lsn and (best is None or t > best):
            best = t
    return best


def _segment_size_of(wal_dir: Path) -> int | None:
    for entry in os.scandir(wal_dir):
        if is_segment_name(entry.name) and entry.is_file():
            return entry.stat().st_size
    return None


__all__ = ["HistoryMixin", "LiveHead", "TimelineHead", "lsn_at"]
