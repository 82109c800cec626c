"""Clone drivers: how one file becomes two.

``reflink`` shares extents (FICLONE) so a clone costs no data copy and no space until
either side writes; ``copy`` is a plain in-kernel copy for filesystems without reflinks
(ext4).  Which one works is a property of the filesystem, so it is probed, not assumed.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from argon.errors import InvalidInput, Unavailable

logger = logging.getLogger(__name__)

FICLONE = 0x40049409  # _IOW(0x94, 9, int) from linux/fs.h
# errnos meaning "this filesystem (pair) cannot share extents", not "something broke".
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS,
               errno.EPERM}
DRIVER_CHOICES = ("auto", "reflink", "copy")


class CloneDriver(Protocol):
    name: str

    def clone_file(self, src: Path, dst: Path) -> None: ...

# Both drivers below also have ``clone_fds(sfd, dfd, src)``: fill the open, empty ``dfd``
# from ``sfd`` (``src`` names it in messages); the tree walk uses it when present.


def _open_pair(src: Path, dst: Path) -> tuple[int, int]:
    sfd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except BaseException:
        os.close(sfd)
        raise
    return sfd, dfd


def _copy_fds(sfd: int, dfd: int) -> None:
    size = os.fstat(sfd).st_size
    copied = 0
    try:
        while copied < size:
            n = os.copy_file_range(sfd, dfd, size - copied)
            if n == 0:  # the source shrank under us (a running cluster): keep what we got
                break
            copied += n
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        os.lseek(sfd, 0, os.SEEK_SET)
        os.lseek(dfd, 0, os.SEEK_SET)
        os.ftruncate(dfd, 0)
        with open(sfd, "rb", closefd=False) as r, open(dfd, "wb", closefd=False) as w:
            shutil.copyfileobj(r, w, 1024 * 1024)


class CopyDriver:
    """Byte copy through ``copy_file_range`` (falls back to read/write)."""

    name = "copy"

    def clone_file(self, src: Path, dst: Path) -> None:
        sfd, dfd = _open_pair(src, dst)
        try:
            self.clone_fds(sfd, dfd, str(src))
        finally:
            os.close(sfd)
            os.close(dfd)

    def clone_fds(self, sfd: int, dfd: int, src: str) -> None:
        _copy_fds(sfd, dfd)


class ReflinkDriver:
    """Extent sharing through the FICLONE ioctl (XFS reflink, btrfs, bcachefs...)."""

    name = "reflink"

    def clone_file(self, src: Path, dst: Path) -> None:
        sfd, dfd = _open_pair(src, dst)
        try:
            self.clone_fds(sfd, dfd, str(src))
        finally:
            os.close(sfd)
            os.close(dfd)

    def clone_fds(self, sfd: int, dfd: int, src: str) -> None:
        try:
            fcntl.ioctl(dfd, FICLONE, sfd)
        except OSError as e:
            if e.errno not in _NO_REFLINK:
                raise
            # e.g. a file on another filesystem inside the tree: still produce a copy.
            logger.warning("reflink of %s failed (%s); copying it instead", src, e)
            _copy_fds(sfd, dfd)


def reflink_supported(path: Path) -> bool:
    """Whether FICLONE works between two files in directory ``path``."""
    probe_dir = path
    while not probe_dir.is_dir():
        probe_dir = probe_dir.parent
    fd_a, name_a = tempfile.mkstemp(prefix=".argon-reflink-probe-", dir=probe_dir)
    fd_b, name_b = tempfile.mkstemp(prefix=".argon-reflink-probe-", dir=probe_dir)
    try:
        os.write(fd_a, b"\0" * 4096)
        os.fsync(fd_a)
        try:
            fcntl.ioctl(fd_b, FICLONE, fd_a)
        except OSError as e:
            if e.errno in _NO_REFLINK:
                return False
            raise
        return True
    finally:
        os.close(fd_a)
        os.close(fd_b)
        os.unlink(name_a)
        os.unlink(name_b)


def check_driver_choice(prefer: str) -> None:
    """Refuse an unknown clone driver name before any work is done with it."""
    if prefer not in DRIVER_CHOICES:
        raise InvalidInput(f"clone driver {prefer!r} is unknown: use one of "
                           f"{', '.join(DRIVER_CHOICES)}")


def detect_clone_driver(path: Path, prefer: str = "auto") -> CloneDriver:
    """The clone driver for storage under ``path``.

    ``auto`` picks reflink when the filesystem supports it, else copy; ``reflink``
    insists (and says how to get it); ``copy`` never probes.
    """
    check_driver_choice(prefer)
    if prefer == "copy":
        return CopyDriver()
    if reflink_supported(path):
        return ReflinkDriver()
    if prefer == "reflink":
        raise Unavailable(
            f"the filesystem holding {path} does not support reflinks (FICLONE); put the "
            "storage root on XFS made with 'mkfs.xfs -m reflink=1', btrfs or bcachefs, "
            "or choose the 'copy' clone driver"
        )
    logger.info("no reflink support under %s: branches will be full copies", path)
    return CopyDriver()
