"""Storage's local implementation is what control is typed against, and takes no SQL.

``Storage`` must offer every member of ``TimelineStore`` and ``WalArchive`` with the
same parameters (a backend written against the protocols is swappable for it), and the
storage room must not import a database driver: the backup SQL lives with compute.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import argon.storage
from argon.storage import Storage
from argon.storage.interfaces import TimelineStore, WalArchive


def _members(proto: type) -> list[str]:
    return [n for n, v in vars(proto).items() if not n.startswith("_") and callable(v)]


@pytest.mark.parametrize("proto", [TimelineStore, WalArchive])
def test_storage_implements_the_protocol(proto: type) -> None:
    for name in _members(proto):
        wanted = list(inspect.signature(getattr(proto, name)).parameters)
        got = list(inspect.signature(getattr(Storage, name)).parameters)
        assert got == wanted, f"Storage.{name}{got} != {proto.__name__}.{name}{wanted}"


def test_the_storage_room_runs_no_sql() -> None:
    room = Path(argon.storage.__file__).parent
    offenders = [p.name for p in room.glob("*.py")
                 if "import psycopg" in p.read_text() or ".execute(" in p.read_text()]
    assert offenders == []
