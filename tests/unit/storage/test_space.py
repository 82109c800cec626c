"""Free-space rules: what an operation needs, the early refusal, the reserve file, and
which errors mean "the disk is full"."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import psycopg
import pytest
import sqlalchemy

from argon.errors import ArgonError, InsufficientStorage, Unavailable, is_disk_full
from argon.storage import space
from argon.storage.space import MARGIN_BYTES, MiB, SpaceReserve, need_for_clone, need_for_root


def test_copy_needs_the_data_plus_a_margin_reflink_only_the_margin() -> None:
    copy = need_for_clone(300 * MiB, "copy")
    assert copy.bytes == 300 * MiB + MARGIN_BYTES
    assert "300 MiB of data" in copy.why
    assert need_for_clone(300 * MiB, "reflink").bytes == MARGIN_BYTES
    assert need_for_root("copy").bytes > need_for_root("reflink").bytes > MARGIN_BYTES


def test_require_refuses_with_what_is_free_needed_and_what_to_do(tmp_path: Path) -> None:
    free = space.free_bytes(tmp_path)
    space.require(tmp_path, space.SpaceNeed(1, "a byte"), "create branch ok")
    with pytest.raises(InsufficientStorage) as refused:
        space.require(tmp_path, space.SpaceNeed(free + 2**40, "a lot"), "create branch big")
    err = refused.value
    assert (err.status, err.code) == (507, "INSUFFICIENT_STORAGE")
    assert "create branch big" in err.message and "free and this needs" in err.message
    assert "(a lot)" in err.message and "then retry" in err.message


def test_size_text_stays_readable() -> None:
    assert space.size_text(0) == "0 KiB"
    assert space.size_text(300 * 1024) == "0.3 MiB"
    assert space.size_text(64 * MiB) == "64 MiB"


def test_reserve_is_made_released_and_made_again(tmp_path: Path) -> None:
    reserve = SpaceReserve(tmp_path / "space-reserve", size=MiB)
    assert reserve.ensure() and (tmp_path / "space-reserve").stat().st_size == MiB
    assert reserve.ensure()                      # idempotent
    assert reserve.release() and not (tmp_path / "space-reserve").exists()
    assert not reserve.release()                 # nothing left to give
    assert reserve.ensure()
    none = SpaceReserve(None)
    assert not none.ensure() and not none.release()


def test_reserve_is_not_made_without_room(tmp_path: Path) -> None:
    huge = SpaceReserve(tmp_path / "space-reserve", size=space.free_bytes(tmp_path) + MiB)
    assert not huge.ensure()
    assert list(tmp_path.iterdir()) == []


def test_disk_full_is_recognised_through_wrapping() -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert is_disk_full(InsufficientStorage("full"))
    assert is_disk_full(psycopg.errors.DiskFull("could not extend file"))
    assert not is_disk_full(psycopg.errors.UniqueViolation("dup"))
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13
    assert is_disk_full(sqlalchemy.exc.OperationalError("COMMIT", None, full))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise Unavailable("the clone failed") from inner
    except ArgonError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(ValueError("nothing to do with space"))
