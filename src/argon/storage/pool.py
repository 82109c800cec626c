"""The storage pool: timelines on XFS (reflink=1) inside an image file, when the home's
filesystem cannot share extents (ext4) -- the planning half, free of I/O.

On ext4 every branch is a full copy.  When Argon runs as root with loop devices and
``mkfs.xfs``, it keeps the timelines in ``<home>/pool/xfs.img`` instead: a sparse file
formatted once with ``mkfs.xfs -m reflink=1``, attached to a loop device and mounted
on ``<home>/timelines`` at every start, so the reflink clone driver makes branches.

Facts about the host and the home (``PoolFacts``, gathered by ``pool_mount``) go in; a
plan comes out: what kind of storage the home gets, the steps that get it there, and
the one line ``argon start`` prints.  The rules that keep data safe live here:

- an image is formatted only when Argon creates it (it is built under a temporary name
  and renamed once formatted): an existing ``xfs.img`` is never formatted again, and
  one that is not XFS stops the start;
- a home whose pool image exists always gets it mounted (``--storage-pool off`` only
  keeps a pool from being made): its timelines live there;
- nothing is mounted over files: timelines that already live on the home's
  filesystem stay there (the pool is for new homes; Argon does not move data);
- nothing is mounted twice: a pool already mounted on the timelines (Argon was killed)
  is adopted, a loop device already attached to the image (a crash between attach and
  mount) is reused, an image mounted anywhere else stops the start.

Sizing: the image is created sparse with the home filesystem's free space (less a
margin) as its size, so the pool offers what the disk has, and it grows (truncate,
``losetup -c``, ``xfs_growfs``) when its free space falls under a threshold while the
disk has more room (``plan_growth``, checked at start and every minute).  Mounted with
``discard``, so deleting timelines gives the blocks back to the home's filesystem.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from argon.errors import Conflict, InvalidInput, Unavailable

GiB = 1 << 30
MiB = 1 << 20
POOL_DIR = "pool"
IMAGE_NAME = "xfs.img"
MODES = ("off", "auto", "xfs-image")
# Kept out of the image's size: the home's own files (metadata, logs) need room too.
HOST_MARGIN_BYTES = 1 * GiB
# The smallest pool worth making (and above XFS's 300 MB floor).
MIN_POOL_BYTES = 2 * GiB
# Grow when the pool's free space falls under max(floor, share of its size) ...
GROW_FLOOR_BYTES = 2 * GiB
GROW_SHARE = 0.10
# ... and only by at least this much (no storm of tiny growths on a nearly full disk).
MIN_GROWTH_BYTES = 1 * GiB
XFS_MAGIC = b"XFSB"


class PoolKind(StrEnum):
    POOL = "pool"                      # timelines on the XFS image (reflinks)
    OFF = "off"                        # --storage-pool off on a home without a pool
    NOT_NEEDED = "not-needed"          # the home's filesystem has reflinks itself
    OWN_FILESYSTEM = "own-filesystem"  # something the admin mounted on the timelines
    EXISTING_DATA = "existing-data"    # timelines already on the home's filesystem
    UNAVAILABLE = "unavailable"        # no root, loop devices or xfsprogs: copies


class Step(StrEnum):
    CREATE = "create"   # sparse file, mkfs.xfs -m reflink=1, rename into place
    ATTACH = "attach"   # losetup --find --show
    MOUNT = "mount"     # mount the loop device on the timelines directory


@dataclass(frozen=True)
class MountEntry:
    mount_point: str
    fstype: str
    source: str


@dataclass(frozen=True)
class PoolFacts:
    mode: str
    home_reflinks: bool
    missing: tuple[str, ...]             # what the host lacks: "root", "loop devices", ...
    image_exists: bool
    image_is_xfs: bool
    timelines_mount: MountEntry | None   # the filesystem mounted on the timelines dir
    timelines_mount_is_pool: bool        # ... and it is this home's image
    image_loops: tuple[str, ...]         # loop devices attached to the image
    image_mounted_elsewhere: tuple[str, ...]  # other mount points of those devices
    timelines_has_data: bool             # entries in the (unmounted) timelines dir
    host_free: int                       # bytes free on the home's filesystem


@dataclass(frozen=True)
class PoolPlan:
    kind: PoolKind
    steps: tuple[Step, ...] = ()
    create_size: int = 0
    loop: str | None = None   # an attached loop device to mount (no ATTACH step)
    note: str = ""            # said by `argon start` ("" when there is nothing to say)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InvalidInput(f"storage pool {mode!r} is unknown: use one of {', '.join(MODES)}")
    return mode


def initial_size(host_free: int) -> int:
    """The image's (sparse) size: what the home's filesystem has free, less a margin."""
    return max(0, (host_free - HOST_MARGIN_BYTES) // MiB * MiB)


def what_to_do(missing: tuple[str, ...]) -> str:
    """The one line for a host that cannot have a pool: what the user could change."""
    fixes = []
    if "root" in missing:
        fixes.append("run argon start as root")
    if "loop devices" in missing:
        fixes.append("allow loop devices (modprobe loop)")
    if "xfsprogs" in missing:
        fixes.append("install xfsprogs")
    if "free space" in missing:
        fixes.append(f"free at least {(MIN_POOL_BYTES + HOST_MARGIN_BYTES) // GiB} GiB")
    fixes.append("or put the home on XFS (reflink=1) or btrfs")
    return (f"unavailable ({', '.join(missing)} missing): branches are full "
            f"copies on this filesystem; for instant branches {', '.join(fixes)}")


def plan_pool(f: PoolFacts) -> PoolPlan:
    """Where this home's timelines live, and the steps to get there.

    Raises when going on would hide, format or double-mount data, and when
    ``xfs-image`` was asked for and cannot be had.
    """
    check_mode(f.mode)
    if f.image_exists:
        return _plan_existing_pool(f)
    if f.mode == "off":
        return PoolPlan(PoolKind.OFF, note="" if f.home_reflinks else
                        "off (--storage-pool off): branches are full copies")
    if f.timelines_mount is not None:
        return PoolPlan(PoolKind.OWN_FILESYSTEM,
                        note=f"none: the timelines are on the {f.timelines_mount.fstype} "
                             f"filesystem mounted there ({f.timelines_mount.source})")
    if f.home_reflinks and f.mode == "auto":
        return PoolPlan(PoolKind.NOT_NEEDED)
    if f.timelines_has_data:
        if f.mode == "xfs-image":
            raise Conflict("this home's timelines already live on the home's filesystem; "
                           "Argon does not move them into a storage pool: use "
                           "--storage-pool auto (copies) or a new home")
        return PoolPlan(PoolKind.EXISTING_DATA,
                        note="none: this home's timelines predate the storage pool and stay on "
                             "the home's filesystem (branches are full copies); the pool "
                             "applies to new homes")
    missing = f.missing
    if initial_size(f.host_free) < MIN_POOL_BYTES:
        missing = (*missing, "free space")
    if missing:
        if f.mode == "xfs-image":
            raise Unavailable(f"--storage-pool xfs-image: {what_to_do(missing)}")
        return PoolPlan(PoolKind.UNAVAILABLE, note=what_to_do(missing))
    return PoolPlan(PoolKind.POOL, (Step.CREATE, Step.ATTACH, Step.MOUNT),
                    create_size=initial_size(f.host_free))


def _plan_existing_pool(f: PoolFacts) -> PoolPlan:
    """A home with a pool image: its timelines live there, so it is mounted whatever the
    mode says, or the start stops with the reason."""
    off_note = ("this home's timelines live in its storage pool, so it stays in use; "
                "--storage-pool off applies to homes without one") if f.mode == "off" else ""
    if not f.image_is_xfs:
        raise Conflict(f"the storage pool image {POOL_DIR}/{IMAGE_NAME} is not an XFS "
                       "filesystem; Argon formats only images it creates: restore it or "
                       "move it away, then start again")
    if f.timelines_mount_is_pool:
        return PoolPlan(PoolKind.POOL, note=off_note)   # still mounted: Argon was killed
    if f.image_mounted_elsewhere:
        raise Conflict(f"the storage pool image is mounted on {f.image_mounted_elsewhere[0]}; "
                       "unmount it there (umount), then start again")
    if f.timelines_mount is not None:
        raise Conflict(f"{f.timelines_mount.source} is mounted on the timelines directory "
                       "where this home's storage pool belongs; unmount it, then start again")
    if f.timelines_has_data:
        raise Conflict("the timelines directory holds files while this home's storage pool "
                       "is not mounted there; mounting would hide them: move them away, "
                       "then start again")
    if f.missing:
        raise Unavailable(f"this home's timelines live in the storage pool "
                          f"{POOL_DIR}/{IMAGE_NAME}, which needs {', '.join(f.missing)} "
                          "to mount: run argon start as root on a host with loop devices "
                          "and xfsprogs")
    if f.image_loops:
        return PoolPlan(PoolKind.POOL, (Step.MOUNT,), loop=f.image_loops[0], note=off_note)
    return PoolPlan(PoolKind.POOL, (Step.ATTACH, Step.MOUNT), note=off_note)


def plan_growth(size: int, pool_free: int, host_free: int) -> int | None:
    """The image's new size when the pool runs low and the disk has more room, else None.

    The pool's free space is brought up to what the home's filesystem has free (less
    the margin), so the pool never offers much more than the disk can hold.
    """
    if pool_free >= max(GROW_FLOOR_BYTES, int(size * GROW_SHARE)):
        return None
    gain = (host_free - HOST_MARGIN_BYTES - pool_free) // MiB * MiB
    if gain < MIN_GROWTH_BYTES:
        return None
    return size + gain


# -- reading the host's tables (pure parsers; pool_mount feeds them) ------------------------

def _unescape(field: str) -> str:
    r"""mountinfo escapes space, tab, newline and backslash as \ooo octal."""
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """The mounts in ``/proc/self/mountinfo`` order (later entries are on top)."""
    entries = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 5 or len(rest) < 2:
            continue
        entries.append(MountEntry(_unescape(fields[4]), rest[0], _unescape(rest[1])))
    return entries


def mount_at(entries: list[MountEntry], mount_point: str) -> MountEntry | None:
    """The topmost filesystem mounted exactly on ``mount_point``."""
    found = None
    for e in entries:
        if e.mount_point == mount_point:
            found = e
    return found


def loops_backed_by(image: str, backing: dict[str, str]) -> tuple[str, ...]:
    """Loop devices (``/dev/loopN`` -> backing file, from sysfs) attached to ``image``.

    The kernel appends `` (deleted)`` to a backing file that was unlinked: that is not
    this image any more."""
    return tuple(sorted((dev for dev, path in backing.items() if path == image),
                        key=lambda d: (len(d), d)))
