"""The storage pool's planning: where a home's timelines live, and what is never done
(format an image twice, mount over files, mount an image twice)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from argon.errors import Conflict, InvalidInput, Unavailable
from argon.storage.pool import (GiB, HOST_MARGIN_BYTES, MIN_POOL_BYTES, MountEntry,
                                PoolFacts, PoolKind, Step, initial_size, loops_backed_by,
                                mount_at, parse_mountinfo, plan_growth, plan_pool)

IMAGE = "/h/pool/xfs.img"
POOL_MOUNT = MountEntry("/h/timelines", "xfs", "/dev/loop3")

FRESH = PoolFacts(mode="auto", home_reflinks=False, missing=(), image_exists=False,
                  image_is_xfs=False, timelines_mount=None, timelines_mount_is_pool=False,
                  image_loops=(), image_mounted_elsewhere=(), timelines_has_data=False,
                  host_free=50 * GiB)
POOL_HOME = replace(FRESH, image_exists=True, image_is_xfs=True)


def test_fresh_ext4_home_gets_a_sparse_pool_sized_to_the_free_space() -> None:
    plan = plan_pool(FRESH)
    assert plan.kind is PoolKind.POOL
    assert plan.steps == (Step.CREATE, Step.ATTACH, Step.MOUNT)
    assert plan.create_size == 50 * GiB - HOST_MARGIN_BYTES
    assert plan_pool(replace(FRESH, mode="xfs-image")).steps == plan.steps


def test_home_with_reflinks_needs_no_pool_unless_asked() -> None:
    assert plan_pool(replace(FRESH, home_reflinks=True)).kind is PoolKind.NOT_NEEDED
    assert plan_pool(replace(FRESH, home_reflinks=True, mode="xfs-image")).kind is PoolKind.POOL


def test_off_gives_copies_and_says_so() -> None:
    plan = plan_pool(replace(FRESH, mode="off"))
    assert plan.kind is PoolKind.OFF and plan.steps == ()
    assert "full copies" in plan.note


@pytest.mark.parametrize("missing, hint", [
    (("root",), "run argon start as root"),
    (("xfsprogs",), "install xfsprogs"),
    (("loop devices",), "loop devices"),
])
def test_without_root_loop_or_xfsprogs_copies_stay_with_one_line_of_advice(
        missing: tuple[str, ...], hint: str) -> None:
    plan = plan_pool(replace(FRESH, missing=missing))
    assert plan.kind is PoolKind.UNAVAILABLE and plan.steps == ()
    assert hint in plan.note and "XFS" in plan.note and "btrfs" in plan.note
    assert "\n" not in plan.note
    with pytest.raises(Unavailable, match=hint):
        plan_pool(replace(FRESH, missing=missing, mode="xfs-image"))


def test_too_little_free_space_for_a_pool_is_said() -> None:
    plan = plan_pool(replace(FRESH, host_free=MIN_POOL_BYTES))
    assert plan.kind is PoolKind.UNAVAILABLE and "free space" in plan.note


def test_timelines_already_on_ext4_are_not_moved() -> None:
    plan = plan_pool(replace(FRESH, timelines_has_data=True))
    assert plan.kind is PoolKind.EXISTING_DATA and plan.steps == ()
    assert "new homes" in plan.note
    with pytest.raises(Conflict, match="does not move"):
        plan_pool(replace(FRESH, timelines_has_data=True, mode="xfs-image"))


def test_a_filesystem_the_admin_mounted_on_the_timelines_is_left_alone() -> None:
    other = MountEntry("/h/timelines", "btrfs", "/dev/sdb1")
    assert plan_pool(replace(FRESH, timelines_mount=other)).kind is PoolKind.OWN_FILESYSTEM


def test_pool_still_mounted_after_kill9_is_adopted_without_steps() -> None:
    plan = plan_pool(replace(POOL_HOME, timelines_mount=POOL_MOUNT,
                             timelines_mount_is_pool=True, image_loops=("/dev/loop3",)))
    assert plan.kind is PoolKind.POOL and plan.steps == ()


def test_after_a_reboot_the_image_is_attached_and_mounted_not_formatted() -> None:
    plan = plan_pool(POOL_HOME)
    assert plan.steps == (Step.ATTACH, Step.MOUNT)
    assert Step.CREATE not in plan.steps


def test_a_loop_left_attached_is_reused_not_attached_twice() -> None:
    plan = plan_pool(replace(POOL_HOME, image_loops=("/dev/loop5",)))
    assert plan.steps == (Step.MOUNT,) and plan.loop == "/dev/loop5"


def test_a_pool_home_keeps_its_pool_when_started_with_off() -> None:
    plan = plan_pool(replace(POOL_HOME, mode="off"))
    assert plan.kind is PoolKind.POOL and plan.steps == (Step.ATTACH, Step.MOUNT)
    assert "applies to homes without one" in plan.note


def test_an_image_that_is_not_xfs_is_never_formatted() -> None:
    with pytest.raises(Conflict, match="formats only images it creates"):
        plan_pool(replace(POOL_HOME, image_is_xfs=False))


def test_an_image_mounted_elsewhere_is_not_mounted_twice() -> None:
    with pytest.raises(Conflict, match="mounted on /mnt/x"):
        plan_pool(replace(POOL_HOME, image_loops=("/dev/loop1",),
                          image_mounted_elsewhere=("/mnt/x",)))


def test_nothing_is_mounted_over_files_or_another_filesystem() -> None:
    with pytest.raises(Conflict, match="hide them"):
        plan_pool(replace(POOL_HOME, timelines_has_data=True))
    with pytest.raises(Conflict, match="/dev/sdb1"):
        plan_pool(replace(POOL_HOME, timelines_mount=MountEntry("/h/timelines", "ext4",
                                                                 "/dev/sdb1")))


def test_a_pool_home_without_root_stops_with_the_reason() -> None:
    with pytest.raises(Unavailable, match="needs root"):
        plan_pool(replace(POOL_HOME, missing=("root",)))


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(InvalidInput, match="off, auto, xfs-image"):
        plan_pool(replace(FRESH, mode="lvm"))


def test_growth_when_low_brings_pool_free_up_to_the_disks_free() -> None:
    size = 20 * GiB
    assert plan_growth(size, pool_free=10 * GiB, host_free=100 * GiB) is None   # not low
    new = plan_growth(size, pool_free=1 * GiB, host_free=30 * GiB)
    assert new == size + 30 * GiB - HOST_MARGIN_BYTES - 1 * GiB
    # the disk has no more than the pool already offers: no growth
    assert plan_growth(size, pool_free=1 * GiB, host_free=2 * GiB) is None


def test_initial_size_keeps_a_margin_and_whole_mebibytes() -> None:
    assert initial_size(10 * GiB + 12345) == 10 * GiB - HOST_MARGIN_BYTES
    assert initial_size(100) == 0


def test_mountinfo_parsing_finds_the_topmost_mount_and_unescapes_paths() -> None:
    text = (
        "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "90 22 7:3 / /h/time\\040lines rw,noatime shared:50 - xfs /dev/loop3 rw,discard\n"
        "91 22 0:50 / /h/tl rw - tmpfs tmpfs rw\n"
        "92 22 7:4 / /h/tl rw master:3 - xfs /dev/loop4 rw\n"
        "garbage line\n")
    entries = parse_mountinfo(text)
    assert mount_at(entries, "/h/time lines") == MountEntry("/h/time lines", "xfs", "/dev/loop3")
    assert mount_at(entries, "/h/tl") == MountEntry("/h/tl", "xfs", "/dev/loop4")
    assert mount_at(entries, "/h") is None


def test_loops_of_an_image_ignore_deleted_backing_files() -> None:
    backing = {"/dev/loop10": IMAGE, "/dev/loop2": IMAGE, "/dev/loop1": IMAGE + " (deleted)",
               "/dev/loop0": "/other.img"}
    assert loops_backed_by(IMAGE, backing) == ("/dev/loop2", "/dev/loop10")
