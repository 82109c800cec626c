"""The storage pool's executor: probe the host, then create, attach, mount, grow and
release the XFS image ``storage.pool`` planned.

Runs once per start, before the storage opens the timelines, under the home's lock
(one Argon per home), so no two processes mount one image.  The commands are the
usual ones (``mkfs.xfs``, ``losetup``, ``mount``, ``xfs_growfs``); the kernel's own
tables (``/proc/self/mountinfo``, ``/sys/block/loop*/loop/backing_file``) say what is
attached and mounted, so a restart after ``kill -9`` or a reboot finds its way.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from argon.errors import ArgonError, Unavailable
from argon.storage.drivers import reflink_supported
from argon.storage.durability import fsync_dir
from argon.storage.pool import (IMAGE_NAME, POOL_DIR, XFS_MAGIC, PoolFacts, PoolKind,
                                Step, check_mode, loops_backed_by, mount_at,
                                parse_mountinfo, plan_growth, plan_pool)
from argon.storage.space import size_text

logger = logging.getLogger(__name__)

MOUNT_OPTIONS = "discard,noatime"   # discard: deleted timelines give blocks back
GROW_CHECK_SECONDS = 60.0
_SYS_BLOCK = Path("/sys/block")


_NO_POOL = {
    PoolKind.OFF: "off",
    PoolKind.NOT_NEEDED: "none needed (the home's filesystem has reflinks)",
    PoolKind.OWN_FILESYSTEM: "none (the timelines have a filesystem of their own)",
    PoolKind.EXISTING_DATA: "none (this home's timelines predate the pool)",
    PoolKind.UNAVAILABLE: "unavailable",
}


@dataclass(frozen=True)
class PoolStatus:
    kind: PoolKind
    mount_point: Path
    image: Path | None = None
    loop: str | None = None
    size_bytes: int = 0        # the image's size (sparse: what XFS may use)
    free_bytes: int = 0        # free in the pool, as XFS counts it
    allocated_bytes: int = 0   # blocks the image really holds on the home's filesystem
    note: str = ""

    def line(self) -> str:
        """The pool for `argon start` and `argon status`."""
        if self.kind is not PoolKind.POOL:
            return self.note or _NO_POOL[self.kind]
        return (f"XFS image {self.image} ({size_text(self.size_bytes)}, "
                f"{size_text(self.allocated_bytes)} allocated, {size_text(self.free_bytes)} "
                f"free) on {self.mount_point} via {self.loop}, driver reflink")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(kind=self.kind.value, mount_point=str(self.mount_point),
                 image=str(self.image) if self.image else None)
        return d


def host_missing() -> tuple[str, ...]:
    """What this host lacks for a pool (root, loop devices, xfsprogs)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if shutil.which("losetup") is None or not os.path.exists("/dev/loop-control"):
        missing.append("loop devices")
    if shutil.which("mkfs.xfs") is None or shutil.which("xfs_growfs") is None:
        missing.append("xfsprogs")
    return tuple(missing)


def loop_backing_files() -> dict[str, str]:
    """``/dev/loopN`` -> its backing file, for every attached loop device."""
    out = {}
    for entry in _SYS_BLOCK.glob("loop*"):
        try:
            out[f"/dev/{entry.name}"] = (entry / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue   # not attached
    return out


def _mounts() -> list[Any]:
    return parse_mountinfo(Path("/proc/self/mountinfo").read_text())


def _is_xfs(image: Path) -> bool:
    try:
        with image.open("rb") as f:
            return f.read(4) == XFS_MAGIC
    except OSError:
        return False


def _has_entries(path: Path) -> bool:
    with os.scandir(path) as it:
        return any(True for _ in it)


def _run(*cmd: str) -> str:
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise Unavailable(f"{' '.join(cmd)} failed: {(res.stderr or res.stdout).strip()}")
    return res.stdout.strip()


class StoragePool:
    """The pool of one home: ``<home>/pool/xfs.img`` mounted on ``<home>/timelines``."""

    def __init__(self, home: Path) -> None:
        self.home = home.resolve()   # mountinfo names real paths
        self.dir = self.home / POOL_DIR
        self.image = self.dir / IMAGE_NAME
        self.mount_point = self.home / "timelines"
        self.loop: str | None = None
        self.kind = PoolKind.OFF

    # -- facts ------------------------------------------------------------------------
    def probe(self, mode: str) -> PoolFacts:
        self.mount_point.mkdir(mode=0o711, parents=True, exist_ok=True)
        mounts = _mounts()
        here = mount_at(mounts, str(self.mount_point))
        loops = loops_backed_by(str(self.image), loop_backing_files())
        elsewhere = tuple(m.mount_point for m in mounts
                          if m.source in loops and m.mount_point != str(self.mount_point))
        st = os.statvfs(self.home)
        return PoolFacts(
            mode=mode, home_reflinks=reflink_supported(self.home), missing=host_missing(),
            image_exists=self.image.exists(), image_is_xfs=_is_xfs(self.image),
            timelines_mount=here, timelines_mount_is_pool=here is not None and here.source in loops,
            image_loops=loops, image_mounted_elsewhere=elsewhere,
            timelines_has_data=here is None and _has_entries(self.mount_point),
            host_free=st.f_bavail * st.f_frsize)

    def status(self, note: str = "") -> PoolStatus:
        if self.kind is not PoolKind.POOL:
            return PoolStatus(self.kind, self.mount_point, note=note)
        st = os.statvfs(self.mount_point)
        img = self.image.stat()
        return PoolStatus(self.kind, self.mount_point, self.image, self.loop, img.st_size,
                          st.f_bavail * st.f_frsize, img.st_blocks * 512, note)

    # -- start ------------------------------------------------------------------------
    def ensure(self, mode: str, size: int | None = None) -> PoolStatus:
        """Make the plan for this home true; ``size`` overrides the new image's size."""
        plan = plan_pool(self.probe(check_mode(mode)))
        self.kind = plan.kind
        if plan.kind is not PoolKind.POOL:
            logger.info("storage pool: %s", plan.kind.value)
            return self.status(plan.note)
        created = attached = False
        try:
            if Step.CREATE in plan.steps:
                self._create(size or plan.create_size)
                created = True
            self.loop = plan.loop
            if Step.ATTACH in plan.steps:
                self.loop, attached = self._attach(), True
            if Step.MOUNT in plan.steps:
                assert self.loop is not None
                _run("mount", "-t", "xfs", "-o", MOUNT_OPTIONS, self.loop, str(self.mount_point))
            else:   # adopted as it was (Argon was killed): find its device
                here = mount_at(_mounts(), str(self.mount_point))
                self.loop = here.source if here else None
        except (ArgonError, OSError) as exc:
            if attached:
                subprocess.run(["losetup", "-d", str(self.loop)], check=False, capture_output=True)
            self.loop = None
            message = exc.message if isinstance(exc, ArgonError) else str(exc)
            if not created:   # an existing pool holds the timelines: no start without it
                raise Unavailable(f"the storage pool {self.image} could not be mounted: "
                                  f"{message}") from exc
            self.image.unlink(missing_ok=True)   # made by this start, never mounted: no data
            if mode == "xfs-image":
                raise Unavailable(f"the storage pool could not be set up: {message}") from exc
            self.kind = PoolKind.UNAVAILABLE
            logger.warning("storage pool: %s", message)
            return self.status(f"unavailable: it could not be set up ({message}); "
                               "branches are full copies")
        os.chmod(self.mount_point, 0o711)   # the Postgres account crosses it
        self.grow_if_needed()
        logger.info("storage pool %s mounted on %s (%s)", self.image, self.mount_point,
                    ", ".join(plan.steps) or "adopted")
        return self.status(plan.note)

    def _create(self, size: int) -> None:
        self.dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)
        part = self.image.with_name(IMAGE_NAME + ".part")   # never attached: safe to drop
        part.unlink(missing_ok=True)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, size)   # sparse: the disk is used as XFS writes
        finally:
            os.close(fd)
        try:
            # -K: no discard pass over a file that holds nothing yet
            _run("mkfs.xfs", "-q", "-K", "-m", "reflink=1", "-L", "argon-pool", str(part))
            with part.open("rb+") as f:
                os.fsync(f.fileno())
            os.rename(part, self.image)   # only a formatted image carries the name
            fsync_dir(self.dir)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        logger.info("created storage pool image %s (%s, sparse)", self.image, size_text(size))

    def _attach(self) -> str:
        try:   # direct I/O: the pool's pages are cached once, by XFS, not twice
            return _run("losetup", "--find", "--show", "--direct-io=on", str(self.image))
        except Unavailable:
            return _run("losetup", "--find", "--show", str(self.image))

    # -- growth -----------------------------------------------------------------------
    def grow_if_needed(self) -> int | None:
        """Grow the image when the pool runs low and the disk has room; the new size."""
        if self.kind is not PoolKind.POOL or self.loop is None:
            return None
        pool, host = os.statvfs(self.mount_point), os.statvfs(self.home)
        new = plan_growth(self.image.stat().st_size, pool.f_bavail * pool.f_frsize,
                          host.f_bavail * host.f_frsize)
        if new is not None:
            self.grow_to(new)
        return new

    def grow_to(self, new_size: int) -> None:
        old = self.image.stat().st_size
        if new_size <= old:
            return
        os.truncate(self.image, new_size)
        _run("losetup", "-c", str(self.loop))
        _run("xfs_growfs", str(self.mount_point))
        logger.info("grew storage pool %s from %s to %s", self.image, size_text(old),
                    size_text(new_size))

    # -- stop -------------------------------------------------------------------------
    def stop_note(self) -> str:
        """What became of the pool at stop, for `Argon stopped (...)`."""
        if self.kind is not PoolKind.POOL:
            return ""
        return "; storage pool unmounted" if self.loop is None else \
            f"; storage pool stays mounted on {self.mount_point}: still in use"

    def release(self) -> bool:
        """Unmount and detach after Argon stopped its computes; True when done.

        A pool still in use (a compute that would not stop) stays mounted -- never a
        lazy unmount, which would let a later start mount the image a second time."""
        if self.kind is not PoolKind.POOL or self.loop is None:
            return False
        res = subprocess.run(["umount", str(self.mount_point)], capture_output=True, text=True)
        if res.returncode != 0:
            logger.warning("storage pool stays mounted on %s: %s", self.mount_point,
                           res.stderr.strip())
            return False
        subprocess.run(["losetup", "-d", self.loop], check=False, capture_output=True)
        logger.info("storage pool unmounted from %s, %s detached", self.mount_point, self.loop)
        self.loop = None
        return True


class PoolGrower:
    """Checks the pool's free space every minute while Argon runs."""

    def __init__(self, pool: StoragePool, interval: float = GROW_CHECK_SECONDS) -> None:
        self.pool = pool
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.pool.kind is PoolKind.POOL and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pool-grower", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.pool.grow_if_needed()
            except (ArgonError, OSError) as exc:
                logger.warning("storage pool growth failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def describe(home: Path) -> PoolStatus:
    """The pool of ``home`` as the kernel sees it now (read-only: status, doctor)."""
    pool = StoragePool(home)
    here = mount_at(_mounts(), str(pool.mount_point))
    if here is None or here.source not in loops_backed_by(str(pool.image), loop_backing_files()):
        kind = PoolKind.UNAVAILABLE if pool.image.exists() else PoolKind.OFF
        note = "the pool image exists but is not mounted" if pool.image.exists() else ""
        return PoolStatus(kind, pool.mount_point, note=note)
    pool.kind, pool.loop = PoolKind.POOL, here.source
    return pool.status()
