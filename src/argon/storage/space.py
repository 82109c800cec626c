"""Free space on the storage filesystem: what an operation needs, and refusing early.

A branch made by the copy driver needs about its parent's data once more; a reflinked
one only its own new files (the WAL its first start writes, a manifest).  Checking
before any metadata is written means a refusal leaves nothing to roll back; an ENOSPC
that still happens mid-way (something else filled the disk meanwhile) is turned into
the same error after the half-made timeline is removed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from argon.errors import InsufficientStorage

MiB = 1 << 20
# WAL segments a new timeline's first start and promotion write (16 MiB each), its
# manifest and samples, and the metadata rows of the operation.
MARGIN_BYTES = 64 * MiB
# An initdb'd PostgreSQL 18 data directory with its WAL, before any user data.
ROOT_TIMELINE_BYTES = 48 * MiB
# Held back for the metadata writes that roll back an operation the disk filled under.
RESERVE_BYTES = 16 * MiB
_FIX = ("delete branches or projects you no longer need, or grow the filesystem, "
        "then retry")


@dataclass(frozen=True)
class SpaceNeed:
    bytes: int
    why: str     # how the figure was reached, for the message


def need_for_clone(data_bytes: int, driver_name: str) -> SpaceNeed:
    """A clone of a data directory of ``data_bytes`` with the named clone driver."""
    if driver_name == "reflink":
        return SpaceNeed(MARGIN_BYTES, f"reflinks share the parent's data; "
                                       f"{size_text(MARGIN_BYTES)} for the new timeline's "
                                       "own WAL and files")
    return SpaceNeed(data_bytes + MARGIN_BYTES,
                     f"a copy of {size_text(data_bytes)} of data plus "
                     f"{size_text(MARGIN_BYTES)} for the new timeline's own WAL and files")


def need_for_root(driver_name: str) -> SpaceNeed:
    """A new project's root timeline: initdb plus its first snapshot (a second copy
    unless reflinked)."""
    if driver_name == "reflink":
        what, total = "a new data directory", ROOT_TIMELINE_BYTES
    else:
        what, total = "a new data directory and a copy as its first snapshot", \
            2 * ROOT_TIMELINE_BYTES
    return SpaceNeed(total + MARGIN_BYTES,
                     f"{what} ({size_text(total)}) plus {size_text(MARGIN_BYTES)} for WAL")


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer (the Postgres account) can still allocate there."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def require(path: Path, need: SpaceNeed, doing: str) -> None:
    """Refuse ``doing`` unless the filesystem holding ``path`` has ``need`` free."""
    free = free_bytes(path)
    if free < need.bytes:
        raise InsufficientStorage(
            f"not enough free space to {doing}: the filesystem holding {path} has "
            f"{size_text(free)} free and this needs {size_text(need.bytes)} ({need.why}); "
            f"{_FIX}")


def disk_full(path: Path, doing: str) -> InsufficientStorage:
    """The error for an ENOSPC met while ``doing`` (after its partial work was removed)."""
    return InsufficientStorage(
        f"the filesystem holding {path} ran out of space while trying to {doing} "
        f"({size_text(free_bytes(path))} free now); nothing was kept of it; {_FIX}")


class SpaceReserve:
    """A file that holds back a little space for Argon's own bookkeeping.

    When an operation meets a full disk its partial files are removed and this file is
    released, so the metadata writes that roll the operation back and record it as
    failed find room even when the partial files were tiny.  ``ensure`` makes it again
    once the filesystem has room (every space check calls it): no restart needed.
    Without a path (tests of storage alone) nothing is held back.
    """

    def __init__(self, path: Path | None, size: int = RESERVE_BYTES) -> None:
        self.path = path
        self.size = size

    def ensure(self) -> bool:
        """Make the reserve if it is missing and there is room; True if it exists."""
        if self.path is None:
            return False
        try:
            if self.path.stat().st_size >= self.size:
                return True
        except FileNotFoundError:
            pass
        if free_bytes(self.path.parent) < self.size + MARGIN_BYTES:
            return False
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
            os.rename(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            return False
        return True

    def release(self) -> bool:
        """Give the reserved space back; True if there was a reserve to give."""
        if self.path is None:
            return False
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


def size_text(n: int) -> str:
    if n >= 10 * MiB:
        return f"{n // MiB} MiB"
    if n >= MiB // 10:
        return f"{n / MiB:.1f} MiB"
    return f"{n // 1024} KiB"
