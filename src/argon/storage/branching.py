"""Making a child data directory from a parent: running (backup API) or stopped.

Both paths end with a child that holds a clone of the parent's files plus exactly the
WAL its first start needs to reach a consistent point; ``Storage`` then adds the
recovery settings that make it promote onto its own Postgres timeline.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from argon.errors import Conflict, InvalidInput, Unavailable
from argon.pg import Lsn, OsUser
from argon.storage.conf import RecoveryTarget
from argon.storage.drivers import CloneDriver
from argon.storage.interfaces import RunningBackup
from argon.storage.manifest import BranchPoint
from argon.storage.tree import CloneRules, clone_tree
from argon.storage.wal import (
    DbState,
    is_history_name,
    is_segment_name,
    parse_backup_label,
    read_control_file,
    segment_name,
    segment_number,
    segments_between,
)

logger = logging.getLogger(__name__)

# A shutdown checkpoint record is ~100 bytes; this bounds where it can end.
_CHECKPOINT_RECORD_MAX = 512


@dataclass(frozen=True)
class CloneJob:
    """Everything one branch needs to know about where files come from and go to."""

    src: Path                        # the parent's pgdata
    dst: Path                        # the child's pgdata (not created yet)
    wal_sources: tuple[Path, ...]    # where WAL may be found: parent's pg_wal, then archives
    driver: CloneDriver
    owner: OsUser


@dataclass(frozen=True)
class PreparedChild:
    """A cloned child and how its first start must recover.

    ``target`` None means "replay all WAL in pg_wal, then promote": a clean shutdown
    checkpoint has no WAL after it, and Postgres refuses an ``immediate`` target that no
    replayed record reaches.  Such a child must then not see the parent's archive (it
    holds the parent's WAL from after the branch point): ``own_archive_only``.
    """

    point: BranchPoint
    target: RecoveryTarget | None
    own_archive_only: bool


def branch_running(job: CloneJob, label: str, backup: RunningBackup) -> PreparedChild:
    """Clone a running parent inside its backup window (``backup(label)``: the compute
    room runs ``pg_backup_start``/``pg_backup_stop`` around the copy, storage only uses
    the results).  A failed copy closes the window, which aborts the backup."""
    with backup(label) as window:
        seg_size = window.wal_segment_size
        rules = CloneRules(log_dirs=_log_dirs(window.log_directory))
        stats = clone_tree(job.src, job.dst, job.driver, job.owner, rules)
    if window.stopped is None:
        raise Unavailable("the online backup of the parent did not stop; retry the branch")
    stop_lsn, labelfile = window.stopped.lsn, window.stopped.labelfile
    spcmapfile = window.stopped.spcmapfile
    started = parse_backup_label(labelfile)
    _write_owned(job.dst / "backup_label", labelfile, job.owner)
    if spcmapfile:
        _write_owned(job.dst / "tablespace_map", spcmapfile, job.owner)
    names = segments_between(started.start_timeline, started.start_lsn, stop_lsn, seg_size)
    copy_wal(job, names)
    copy_history(job)
    logger.info("cloned running %s: %d files, %d MiB, WAL %s..%s", job.src, stats.files,
                stats.bytes >> 20, names[0], names[-1])
    point = BranchPoint(stop_lsn, started.start_timeline, datetime.now(UTC))
    return PreparedChild(point, RecoveryTarget(), own_archive_only=False)


def branch_stopped(job: CloneJob, parent_point: BranchPoint | None) -> PreparedChild:
    """Clone a stopped parent.

    A parent that was cleanly shut down is consistent at its last checkpoint.  A parent
    that is itself a branch never started still has its backup_label and WAL: the child
    inherits that pending recovery unchanged, so it starts at the same point.
    """
    ensure_stopped(job.src)
    if (job.src / "backup_label").exists():
        if parent_point is None:
            raise Conflict(f"{job.src} holds an unfinished backup but no branch point; "
                           "start and stop the parent's compute once, then branch again")
        rules = CloneRules(keep_wal=True, keep_backup_files=True)
        clone_tree(job.src, job.dst, job.driver, job.owner, rules)
        return PreparedChild(parent_point, RecoveryTarget(), own_archive_only=False)
    facts = read_control_file(job.src)
    if facts.state is not DbState.SHUTDOWNED:
        raise Conflict(
            f"the parent data directory {job.src} was not shut down cleanly (state "
            f"{facts.state.name.lower()}); start its compute and stop it (or branch it "
            "while it runs), then retry"
        )
    seg_size = _segment_size(job.src / "pg_wal")
    clone_tree(job.src, job.dst, job.driver, job.owner, CloneRules())
    needed = segments_between(facts.timeline, facts.redo, Lsn(facts.checkpoint + 1), seg_size)
    tail = segment_name(facts.timeline,
                        (facts.checkpoint + _CHECKPOINT_RECORD_MAX) // seg_size, seg_size)
    # Only from pg_wal: the parent's archive may hold WAL it wrote after this checkpoint
    # (in an earlier run), which must not reach the child.
    local = replace(job, wal_sources=(job.src / "pg_wal",))
    copy_wal(local, needed, optional=[tail] if tail not in needed else [])
    copy_history(job)
    point = BranchPoint(facts.checkpoint, facts.timeline, datetime.now(UTC))
    return PreparedChild(point, None, own_archive_only=True)


def ensure_stopped(pgdata: Path) -> None:
    """Refuse to treat a data directory with a live postmaster as stopped."""
    try:
        first = (pgdata / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    except FileNotFoundError:
        return
    try:
        pid = int(first)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return  # stale pid file left by a crash
    except PermissionError:
        pass
    raise Conflict(f"Postgres is running on {pgdata} (pid {first}); branch it as a running "
                   "parent or stop its compute first")


def copy_wal(job: CloneJob, names: Sequence[str], optional: Sequence[str] = ()) -> None:
    dst_wal = job.dst / "pg_wal"
    for name in [*names, *optional]:
        source = next((d / name for d in job.wal_sources if (d / name).is_file()), None)
        if source is None:
            if name in optional:
                continue
            raise Unavailable(
                f"WAL segment {name} needed by the branch is neither in {job.src}/pg_wal "
                "nor in the archives of the parent's timelines; it was recycled before "
                "being archived: check that archiving works, then retry the branch"
            )
        _clone_owned(job, source, dst_wal / name)


def copy_history(job: CloneJob) -> None:
    """The parent's timeline history files, so recovery can follow its timeline."""
    src_wal = job.src / "pg_wal"
    for entry in os.scandir(src_wal):
        target = job.dst / "pg_wal" / entry.name
        if is_history_name(entry.name) and entry.is_file() and not target.exists():
            _clone_owned(job, Path(entry.path), target)


def _clone_owned(job: CloneJob, src: Path, dst: Path) -> None:
    job.driver.clone_file(src, dst)
    os.chmod(dst, 0o600)
    job.owner.chown(dst)


def _write_owned(path: Path, text: str, owner: OsUser) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    owner.chown(path)


def _segment_size(wal_dir: Path) -> int:
    for entry in os.scandir(wal_dir):
        if is_segment_name(entry.name) and entry.is_file():
            segment_number(entry.name)  # validates the name
            return entry.stat().st_size
    raise InvalidInput(f"{wal_dir} holds no WAL segment: this is not a usable data directory")


def _log_dirs(log_directory: str) -> frozenset[str]:
    # Only a log directory inside the data directory is part of the clone.
    norm = posixpath.normpath(log_directory)
    if posixpath.isabs(norm) or norm.startswith("..") or "/" in norm:
        return frozenset({"log"})
    return frozenset({"log", norm})
