"""Cloning a data directory: what a base backup keeps, and the walk that clones it.

``clone_action`` is the pure rule (tested on its own); ``clone_tree`` applies it with a
clone driver, keeping modes and handing every entry to the Postgres account.
"""

from __future__ import annotations

import enum
import filecmp
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from argon.errors import InvalidInput
from argon.pg import OsUser
from argon.storage.drivers import CloneDriver

logger = logging.getLogger(__name__)


class Action(enum.Enum):
    COPY = "copy"     # clone the file / create the directory and descend
    EMPTY = "empty"   # create the directory, leave it empty
    SKIP = "skip"     # leave out entirely


# Top-level files a base backup leaves out, plus the ones storage writes itself for a
# branch (its own config and recovery signals).
EXCLUDED_TOP_FILES = frozenset({
    "postmaster.pid", "postmaster.opts", "backup_label", "backup_label.old",
    "tablespace_map", "tablespace_map.old", "current_logfiles", "current_logfiles.tmp",
    "postgresql.auto.conf.tmp", "recovery.signal", "standby.signal",
    "argon.storage.conf", "argon.storage.conf.tmp",
})
# Top-level directories whose contents are runtime state, rebuilt at start.
EMPTIED_TOP_DIRS = frozenset({
    "pg_dynshmem", "pg_notify", "pg_replslot", "pg_serial", "pg_snapshots",
    "pg_stat_tmp", "pg_subtrans",
})
WAL_DIR = "pg_wal"


@dataclass(frozen=True)
class CloneRules:
    """What to leave out of a clone.

    ``log_dirs``: relative log directories whose contents are dropped.  ``keep_wal``:
    copy pg_wal's files too (a branch that never started still needs the WAL segments
    storage put there); otherwise pg_wal keeps only its subdirectories, and the needed
    segments are added separately.  ``keep_backup_files``: keep backup_label and
    tablespace_map (same case).
    """

    log_dirs: frozenset[str] = frozenset({"log"})
    keep_wal: bool = False
    keep_backup_files: bool = False


def clone_action(rel: tuple[str, ...], is_dir: bool, rules: CloneRules) -> Action:
    """What to do with the entry at relative path ``rel`` (a tuple of parts)."""
    name = rel[-1]
    if name.startswith("pgsql_tmp") or (not is_dir and name.startswith("pg_internal.init")):
        return Action.SKIP
    top = rel[0]
    if len(rel) == 1:
        if is_dir:
            if top in EMPTIED_TOP_DIRS or top in rules.log_dirs:
                return Action.EMPTY
            return Action.COPY
        if rules.keep_backup_files and name in ("backup_label", "tablespace_map"):
            return Action.COPY
        return Action.SKIP if name in EXCLUDED_TOP_FILES else Action.COPY
    if top == WAL_DIR and not rules.keep_wal:
        # Keep pg_wal's subdirectories (archive_status, summaries) but none of the WAL.
        return Action.EMPTY if (is_dir and len(rel) == 2) else Action.SKIP
    return Action.COPY


@dataclass
class CloneStats:
    files: int = 0
    dirs: int = 0
    bytes: int = 0


def clone_tree(src: Path, dst: Path, driver: CloneDriver, owner: OsUser,
               rules: CloneRules, *, link_from: Path | None = None) -> CloneStats:
    """Clone data directory ``src`` into ``dst`` (which must not exist yet).

    Files that vanish during the walk (a running cluster dropping a relation) are
    skipped, as a base backup does; the backup's WAL replay recreates the right state.

    ``link_from``: a tree nothing ever writes to again (a project template) that
    ``src`` was cloned from; a file of ``src`` still identical to its counterpart there
    (content, mode, owner) becomes a hard link to that counterpart instead of a copy.
    Only for trees nothing writes to either (snapshots): a link shares the file.
    """
    chown = os.geteuid() == 0 and owner.uid != 0
    st = os.stat(src)
    os.mkdir(dst, stat.S_IMODE(st.st_mode))
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    if chown:
        os.chown(dst, owner.uid, owner.gid)
    stats = CloneStats(dirs=1)
    _clone_dir(str(src), str(dst), (), driver, owner if chown else None, rules, stats,
               None if link_from is None else str(link_from))
    return stats


def _clone_dir(src: str, dst: str, rel: tuple[str, ...], driver: CloneDriver,
               owner: OsUser | None, rules: CloneRules, stats: CloneStats,
               link_from: str | None) -> None:
    # Plain strings and a directory fd for the targets: pathlib and per-file path
    # lookups cost more than the FICLONE itself on a tree of ~1000 files.
    try:
        entries = list(os.scandir(src))
    except FileNotFoundError:
        return
    dst_fd = os.open(dst, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for entry in entries:
            _clone_entry(entry, dst, dst_fd, rel, driver, owner, rules, stats, link_from)
    finally:
        os.close(dst_fd)


def _clone_entry(entry: os.DirEntry[str], dst: str, dst_fd: int, rel: tuple[str, ...],
                 driver: CloneDriver, owner: OsUser | None, rules: CloneRules,
                 stats: CloneStats, link_from: str | None) -> None:
    child_rel = (*rel, entry.name)
    try:
        st = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise InvalidInput(
            f"the data directory has a symbolic link at {'/'.join(child_rel)} (a "
            "tablespace or a relocated directory); branches support only the default "
            "tablespace: move objects with ALTER ... SET TABLESPACE pg_default"
        )
    is_dir = stat.S_ISDIR(st.st_mode)
    action = clone_action(child_rel, is_dir, rules)
    if action is Action.SKIP:
        return
    mode = stat.S_IMODE(st.st_mode)
    if is_dir:
        os.mkdir(entry.name, mode, dir_fd=dst_fd)
        os.chmod(entry.name, mode, dir_fd=dst_fd)  # mkdir obeys umask
        if owner is not None:
            os.chown(entry.name, owner.uid, owner.gid, dir_fd=dst_fd)
        stats.dirs += 1
        if action is Action.COPY:
            _clone_dir(entry.path, os.path.join(dst, entry.name), child_rel, driver, owner,
                       rules, stats, link_from)
        return
    if not stat.S_ISREG(st.st_mode):
        logger.warning("skipping %s: not a regular file", entry.path)
        return
    if link_from is not None and _linked(os.path.join(link_from, *child_rel), entry.path,
                                         st, entry.name, dst_fd):
        stats.files += 1
        stats.bytes += st.st_size
        return
    clone_fds = getattr(driver, "clone_fds", None)
    if clone_fds is None:   # a driver that clones by path only
        if _clone_by_path(entry, dst, driver, owner, mode):
            stats.files += 1
            stats.bytes += st.st_size
        return
    try:
        sfd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # the source vanished mid-clone (a running cluster dropped it)
    try:
        dfd = os.open(entry.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600,
                      dir_fd=dst_fd)
        try:
            clone_fds(sfd, dfd, entry.path)
            os.fchmod(dfd, mode)
            if owner is not None:
                os.fchown(dfd, owner.uid, owner.gid)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)
    stats.files += 1
    stats.bytes += st.st_size


def _linked(original: str, path: str, st: os.stat_result, name: str, dst_fd: int) -> bool:
    """Hard-link ``name`` to ``original`` when that file is the same as ``path`` (the one
    being cloned, stat ``st``) in content, mode and owner; False to clone it instead."""
    try:
        ost = os.stat(original, follow_symlinks=False)
        if not (stat.S_ISREG(ost.st_mode) and ost.st_size == st.st_size
                and ost.st_mode == st.st_mode and ost.st_uid == st.st_uid
                and ost.st_gid == st.st_gid
                and filecmp.cmp(original, path, shallow=False)):
            return False
        os.link(original, name, dst_dir_fd=dst_fd)
    except OSError:   # gone, another filesystem (EXDEV), too many links (EMLINK): clone
        return False
    return True


def _clone_by_path(entry: os.DirEntry[str], dst: str, driver: CloneDriver,
                   owner: OsUser | None, mode: int) -> bool:
    target = Path(dst, entry.name)
    try:
        driver.clone_file(Path(entry.path), target)
    except FileNotFoundError:
        if os.path.exists(entry.path):
            raise
        target.unlink(missing_ok=True)  # the source vanished mid-clone
        return False
    os.chmod(target, mode)
    if owner is not None:
        os.chown(target, owner.uid, owner.gid)
    return True
