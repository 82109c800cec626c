"""The storage room's seams: what control and compute need from timelines and WAL.

Control reaches storage only through these (``ControlContext.storage`` is a
``TimelineStore`` that is also a ``WalArchive``); none of them hands out a host path.
Today's implementation is ``Storage`` (``timelines.py``): directories on the home's
filesystem, reflink clones, a WAL archive directory per timeline.  An object-store
backend would implement the same methods over a bucket with the local directories as a
cache; a Kubernetes one over volume snapshots.  The one path that leaves storage is the
local compute provider's locator (``locator.py``), wired where both local
implementations are built (``control/services.py``).

Storage runs no SQL: what it needs from a running compute comes as results of the
compute room's ``argon.compute.backup`` (``BackupWindow``, ``SealedWal`` below describe
them structurally, so storage does not import compute).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from argon.pg import Lsn

if TYPE_CHECKING:
    from argon.storage.gc import GcPlan
    from argon.storage.history import LiveHead, TimelineHead
    from argon.storage.manifest import BranchPoint, TimelineManifest
    from argon.storage.pitr import PointInTime
    from argon.storage.snapshots import Snapshot
    from argon.storage.wal import ControlFacts


class BackupStopped(Protocol):
    # read-only members (storage only reads them), so a frozen dataclass satisfies them
    @property
    def lsn(self) -> Lsn: ...
    @property
    def labelfile(self) -> str: ...
    @property
    def spcmapfile(self) -> str: ...


class BackupWindow(Protocol):
    """A running compute inside ``pg_backup_start``/``pg_backup_stop`` (compute/backup.py
    ``OnlineBackup``): ``stopped`` is set once the window closed."""

    @property
    def wal_segment_size(self) -> int: ...
    @property
    def log_directory(self) -> str: ...
    @property
    def stopped(self) -> BackupStopped | None: ...


# label -> the window, entered by storage around its copy (compute/backup.py backup_of)
RunningBackup = Callable[[str], AbstractContextManager[BackupWindow]]


class SealedWal(Protocol):
    """A live compute's WAL switched after ``head`` (compute/backup.py ``WalSwitch``)."""

    head: Lsn
    time: datetime
    pg_timeline: int
    last_segment: str


class WalArchive(Protocol):
    """A timeline's archived WAL and the history it makes reachable."""

    def seal_wal(self, timeline_id: str, sealed: SealedWal,
                 timeout: float = ...) -> LiveHead: ...
    # waits until ``sealed.last_segment`` is archived: the past up to the head is
    # reachable from the archive from then on

    def samples(self, timeline_id: str) -> list[tuple[datetime, Lsn]]: ...

    def record_sample(self, timeline_id: str, when: datetime, lsn: Lsn) -> None: ...

    def reachable_from(self, timeline_id: str) -> Snapshot | None: ...

    def snapshots(self, timeline_id: str) -> list[Snapshot]: ...

    def collect_garbage(self, timeline_ids: list[str], window_starts: dict[str, datetime],
                        pinned: set[str], dry_run: bool = False) -> GcPlan: ...


class TimelineStore(Protocol):
    """Timelines: create, branch (now or at a point), snapshot, delete; no paths out."""

    def exists(self, timeline_id: str) -> bool: ...

    def manifest(self, timeline_id: str) -> TimelineManifest: ...

    def init_timeline(self, timeline_id: str,
                      initdb: Callable[[Path], Path | None]) -> None: ...
    # ``initdb`` fills an empty data directory (the local backend's; a remote one would
    # run it where its data lives), and may return the template it was cloned from

    def branch_timeline(self, child_id: str, parent_id: str,
                        running_parent: RunningBackup | None) -> BranchPoint: ...

    def branch_timeline_at(self, child_id: str, parent_id: str, point: PointInTime,
                           live: LiveHead | None) -> BranchPoint: ...

    def snapshot_running(self, timeline_id: str, backup: RunningBackup) -> Snapshot: ...

    def stopped_head(self, timeline_id: str) -> TimelineHead: ...

    def control_facts(self, timeline_id: str) -> ControlFacts: ...
    # a stopped timeline's pg_control (state, checkpoint) without a compute

    def recovery_finished(self, timeline_id: str) -> None: ...

    def require_space_for_branch(self, parent_id: str, doing: str) -> None: ...

    def require_space_for_root(self, doing: str) -> None: ...

    def delete_timeline(self, timeline_id: str) -> None: ...

    def size_bytes(self, timeline_id: str) -> int: ...

    def history_bytes(self, timeline_id: str) -> int: ...

    def repair(self, known_ids: set[str]) -> list[str]: ...
    # finish or undo what a crash left half-made; returns what was done

    def pin(self, *timeline_ids: str) -> AbstractContextManager[None]: ...
    # history of these timelines is not collected while held


__all__ = ["BackupStopped", "BackupWindow", "RunningBackup", "SealedWal", "TimelineStore",
           "WalArchive"]
