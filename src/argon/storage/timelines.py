"""``Storage``: timelines on disk (layout, lifecycle, repair).

Layout under the root::

    <root>/<timeline_id>/manifest.json   id, parent, branch point, state, driver
    <root>/<timeline_id>/pgdata/         the data directory (0700, the Postgres account)
    <root>/<timeline_id>/wal/            this timeline's WAL archive (the Postgres account)

Other rooms reach timelines only through this class, never by path arithmetic of their
own, so that storage can later move WAL and snapshots to object storage.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from argon.errors import (
    ArgonError,
    Conflict,
    InsufficientStorage,
    InvalidInput,
    NotFound,
    is_disk_full,
)
from argon.pg import OsUser
from argon.storage import space
from argon.storage.branching import CloneJob, branch_running, branch_stopped
from argon.storage.conf import RecoveryTarget, StorageConf, write_storage_conf
from argon.storage.drivers import CloneDriver
from argon.storage.objectstore.wal_commands import BucketWal
from argon.storage.interfaces import RunningBackup
from argon.storage.history import HistoryMixin
from argon.storage.pins import LocalPins, PinRegistry
from argon.storage.manifest import (
    MANIFEST_NAME,
    BranchPoint,
    TimelineManifest,
    TimelineState,
    read_manifest,
    write_manifest,
)
from argon.storage.repair import TRASH_PREFIX, plan_repair
from argon.storage.snapshots import Snapshot, clean_staging
from argon.storage.replicas import ReplicaStore
from argon.storage.wal import ControlFacts, read_control_file
from argon.storage.durability import syncfs

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from argon.storage.objectstore.snapshot_sync import SnapshotSync

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_MAX_ANCESTRY = 10_000


class Storage(HistoryMixin):
    # Set at start with --object-store: WAL also goes to (and comes back from) a bucket.
    bucket_wal: BucketWal | None = None
    # Set at start with --object-store: snapshots are copied to the bucket in the background.
    snapshot_sync: SnapshotSync | None = None

    def __init__(self, root: Path, driver: CloneDriver, owner: OsUser,
                 reserve: space.SpaceReserve | None = None) -> None:
        self.root = Path(root)
        self.driver = driver
        self.owner = owner
        # timelines a running operation reads history of (control injects a registry
        # shared by every Argon on the metadata database)
        self.pins: PinRegistry = LocalPins()
        # 0755: the Postgres account must traverse to its data and archive directories.
        self.root.mkdir(mode=0o711, parents=True, exist_ok=True)
        # Space held back for the metadata of a rollback (none: nothing held back).
        self.reserve = reserve or space.SpaceReserve(None)
        self.reserve.ensure()

    # -- paths ---------------------------------------------------------------------
    def _dir(self, timeline_id: str) -> Path:
        if not _ID_RE.match(timeline_id):
            raise InvalidInput(f"invalid timeline id {timeline_id!r}: use letters, digits, "
                               "'-' and '_' (at most 100 characters)")
        return self.root / timeline_id

    def pgdata(self, timeline_id: str) -> Path:
        return self._dir(timeline_id) / "pgdata"

    def archive_dir(self, timeline_id: str) -> Path:
        return self._dir(timeline_id) / "wal"

    def exists(self, timeline_id: str) -> bool:
        return (self._dir(timeline_id) / MANIFEST_NAME).is_file()

    def replica_store(self) -> ReplicaStore:
        """Read replicas' own copies of this store's timelines."""
        return ReplicaStore(self.root, self.driver, self.owner, self.pgdata, self.archive_dir)

    def control_facts(self, timeline_id: str) -> ControlFacts:
        """What the timeline's pg_control says (state, checkpoint), without a compute."""
        return read_control_file(self.pgdata(timeline_id))

    def manifest(self, timeline_id: str) -> TimelineManifest:
        tdir = self._dir(timeline_id)
        if not (tdir / MANIFEST_NAME).is_file():
            raise NotFound(f"timeline {timeline_id} does not exist in {self.root}")
        return read_manifest(tdir)

    # -- creation ------------------------------------------------------------------
    def init_timeline(self, timeline_id: str,
                      initdb: Callable[[Path], Path | None]) -> None:
        """A root timeline: ``initdb(pgdata)`` fills the empty data directory; it may
        return the template the data directory was cloned from (never written to)."""
        tdir = self._begin(timeline_id, parent_id=None)
        with self._undone_on_error(tdir, f"create timeline {timeline_id}"):
            pgdata = self._make_owned_dir(tdir / "pgdata")
            template = initdb(pgdata)
            write_storage_conf(pgdata, self._conf(timeline_id, None), self.owner)
            # The first snapshot: every later point of a root timeline replays from it.
            # A byte copy shares the template's unchanged files by hard links (a new
            # inode costs more than its bytes on some filesystems: ~0.8 ms each on
            # ext4 here, for ~1000 files); extents are shared already by a reflink.
            self._initdb_snapshot(timeline_id, pgdata,
                                  template if self.driver.name == "copy" else None)
            # one syncfs makes the data directory and that snapshot durable before the
            # manifest says READY (``initdb`` need not sync what it wrote)
            syncfs(tdir)
            manifest = self.manifest(timeline_id)
            write_manifest(tdir, manifest.with_state(TimelineState.READY))
        logger.info("created root timeline %s", timeline_id)

    def branch_timeline(self, child_id: str, parent_id: str,
                        running_parent: RunningBackup | None) -> BranchPoint:
        """A child of ``parent_id`` that starts on its own new Postgres timeline.

        ``running_parent`` opens the running parent's backup window (the compute room's
        ``compute.backup.backup_of``), or is None when the parent's Postgres is stopped.
        """
        parent = self.manifest(parent_id)
        if parent.state is not TimelineState.READY:
            raise Conflict(f"timeline {parent_id} is still being created; retry when ready")
        tdir = self._begin(child_id, parent_id=parent_id)
        with self._undone_on_error(tdir, f"branch timeline {parent_id}"):
            job = CloneJob(
                src=self.pgdata(parent_id), dst=tdir / "pgdata",
                wal_sources=(self.pgdata(parent_id) / "pg_wal",
                             *self._restore_dirs(parent_id)),
                driver=self.driver, owner=self.owner,
            )
            if running_parent is not None:
                prepared = branch_running(job, f"argon branch {child_id}", running_parent)
            else:
                prepared = branch_stopped(job, parent.branch_point)
            point = prepared.point
            pgdata = tdir / "pgdata"
            # No snapshot of the parent here: even a reflinked one doubles the branch's
            # metadata, and an older snapshot plus the parent's WAL reaches this point
            # (the reconciler snapshots by WAL volume to bound that replay).
            self.record_sample(parent_id, point.timestamp, point.lsn)
            conf = self._conf(child_id, prepared.target)
            if prepared.own_archive_only:
                conf = replace(conf, restore_dirs=conf.restore_dirs[:1])
            write_storage_conf(pgdata, conf, self.owner)
            (pgdata / "recovery.signal").touch(mode=0o600)
            self.owner.chown(pgdata / "recovery.signal")
            syncfs(tdir)
            manifest = self.manifest(child_id)
            write_manifest(tdir, TimelineManifest(
                id=child_id, parent_id=parent_id, branch_point=point,
                state=TimelineState.READY, driver=self.driver.name,
                created_at=manifest.created_at, recovery_pending=True,
            ))
        logger.info("branched timeline %s from %s at %s (pg timeline %d, %s)", child_id,
                    parent_id, point.lsn, point.pg_timeline,
                    "running" if running_parent else "stopped")
        return point

    def _initdb_snapshot(self, timeline_id: str, pgdata: Path,
                         template: Path | None) -> None:
        try:
            facts = read_control_file(pgdata)
        except OSError as e:
            logger.warning("timeline %s has no pg_control (%s): no initial snapshot; its "
                           "history starts at its first branch or snapshot", timeline_id, e)
            return
        when = datetime.fromtimestamp(facts.time, UTC)
        self._snapshot_from(timeline_id, pgdata, Snapshot(
            timeline_id, facts.checkpoint, facts.timeline, when, "initdb"),
            link_from=template)
        self.record_sample(timeline_id, when, facts.checkpoint)

    def recovery_finished(self, timeline_id: str) -> None:
        """Drop the one-shot recovery target after the branch's first successful start."""
        manifest = self.manifest(timeline_id)
        write_storage_conf(self.pgdata(timeline_id), self._conf(timeline_id, None), self.owner)
        if manifest.recovery_pending:
            updated = replace(manifest, recovery_pending=False)
            if not manifest.branch_lsn_exact and manifest.branch_point is not None:
                exact = self.exact_branch_lsn(timeline_id)
                if exact is not None:
                    updated = replace(updated, branch_lsn_exact=True,
                                      branch_point=replace(manifest.branch_point, lsn=exact))
            write_manifest(self._dir(timeline_id), updated)

    # -- free space ------------------------------------------------------------------
    def require_space_for_branch(self, parent_id: str, doing: str) -> None:
        """Refuse early (``InsufficientStorage``) a branch, restore or time travel from
        ``parent_id`` that the filesystem has no room for; nothing is written."""
        self.reserve.ensure()   # back once space has returned
        data = 0
        if self.driver.name != "reflink":
            pgdata = self.pgdata(parent_id)
            # pg_wal is not cloned whole: the branch takes only the segments it needs,
            # which the margin covers.
            data = self._du(pgdata) - self._du(pgdata / "pg_wal")
        space.require(self.root, space.need_for_clone(data, self.driver.name), doing)

    def require_space_for_root(self, doing: str) -> None:
        """Refuse early a new root timeline (a project) the filesystem has no room for."""
        self.reserve.ensure()
        space.require(self.root, space.need_for_root(self.driver.name), doing)

    # -- removal and accounting ----------------------------------------------------
    def delete_timeline(self, timeline_id: str) -> None:
        """Remove a timeline; deleting one that is gone is not an error."""
        tdir = self._dir(timeline_id)
        if not tdir.exists():
            return
        self._remove(tdir)
        logger.info("deleted timeline %s", timeline_id)

    def size_bytes(self, timeline_id: str) -> int:
        """Bytes allocated on disk by the timeline's data and archive (shared extents
        of reflinked files count for every timeline that holds them)."""
        if not self.exists(timeline_id):
            raise NotFound(f"timeline {timeline_id} does not exist in {self.root}")
        return self._du(self._dir(timeline_id))

    def history_bytes(self, timeline_id: str) -> int:
        """Bytes of the timeline's history alone: WAL archive and snapshots."""
        tdir = self._dir(timeline_id)
        return self._du(tdir / "wal") + self._du(tdir / "snapshots")

    @staticmethod
    def _du(top: Path) -> int:
        total = 0
        for dirpath, dirnames, filenames in os.walk(top):
            for name in [*dirnames, *filenames]:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
                except FileNotFoundError:
                    continue
        return total

    def repair(self, known_ids: set[str]) -> list[str]:
        """At start-up: remove half-made, unreadable and unknown timeline directories."""
        found: dict[str, TimelineState | None] = {}
        for entry in os.scandir(self.root):
            if not entry.is_dir(follow_symlinks=False):
                continue
            try:
                found[entry.name] = read_manifest(Path(entry.path)).state
            except (ArgonError, OSError):
                found[entry.name] = None
        sentences = []
        for name, state in found.items():
            if state is TimelineState.READY and clean_staging(self.root / name):
                sentences.append(f"removed unfinished snapshots of timeline {name}")
        for action in plan_repair(found, known_ids):
            shutil.rmtree(self.root / action.name, ignore_errors=True)
            logger.warning("storage repair: %s", action.sentence)
            sentences.append(action.sentence)
        return sentences

    # -- internals -----------------------------------------------------------------
    def _begin(self, timeline_id: str, parent_id: str | None) -> Path:
        tdir = self._dir(timeline_id)
        try:
            tdir.mkdir(mode=0o711)
        except FileExistsError:
            raise Conflict(f"timeline {timeline_id} already exists") from None
        except OSError as e:
            if is_disk_full(e):
                self.reserve.release()
                raise space.disk_full(self.root, f"create timeline {timeline_id}") from e
            raise
        with self._undone_on_error(tdir, f"create timeline {timeline_id}"):
            os.chmod(tdir, 0o711)
            write_manifest(tdir, TimelineManifest(
                id=timeline_id, parent_id=parent_id, branch_point=None,
                state=TimelineState.CREATING, driver=self.driver.name,
                created_at=datetime.now(UTC),
            ))
            self._make_owned_dir(tdir / "wal")
        return tdir

    @contextmanager
    def _undone_on_error(self, tdir: Path, doing: str) -> Iterator[None]:
        """Remove a timeline being made when its block fails; a full disk becomes
        ``InsufficientStorage`` (after the removal gave the space back)."""
        try:
            yield
        except Exception as exc:
            self._remove(tdir)
            # Not every symptom of a full disk carries ENOSPC: the parent's Postgres
            # reports only "checkpoint request failed" for its backup start.  A refusal
            # of the request itself (4xx) stays what it is.
            refused = isinstance(exc, ArgonError) and exc.status < 500
            low = not refused and space.free_bytes(self.root) < space.MARGIN_BYTES
            if is_disk_full(exc) or low:
                logger.warning("%s failed on a (nearly) full filesystem: %s", doing, exc)
                # The caller's rollback writes metadata, maybe on this same filesystem.
                self.reserve.release()
                if not isinstance(exc, InsufficientStorage):
                    raise space.disk_full(self.root, doing) from exc
            raise

    def _make_owned_dir(self, path: Path) -> Path:
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)
        self.owner.chown(path)
        return path

    def _ancestors(self, timeline_id: str) -> list[str]:
        chain: list[str] = []
        current = self.manifest(timeline_id).parent_id
        while current is not None and len(chain) < _MAX_ANCESTRY:
            if current in chain or not self.exists(current):
                break
            chain.append(current)
            current = self.manifest(current).parent_id
        return chain

    def _restore_dirs(self, timeline_id: str) -> tuple[Path, ...]:
        return tuple(self.archive_dir(t) for t in [timeline_id, *self._ancestors(timeline_id)])

    def _conf(self, timeline_id: str, target: RecoveryTarget | None) -> StorageConf:
        return StorageConf(self.archive_dir(timeline_id), self._restore_dirs(timeline_id),
                           target, self.bucket_wal)

    def _remove(self, tdir: Path) -> None:
        # Rename first: a half-deleted directory must never look like a timeline.
        trash = self.root / f"{TRASH_PREFIX}{tdir.name}.{uuid.uuid4().hex[:8]}"
        try:
            os.rename(tdir, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

