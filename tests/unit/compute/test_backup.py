"""The compute room runs the backup API for storage: order, results, and aborts.

A fake session records the SQL (no Postgres): storage's copy happens between
``pg_backup_start`` and ``pg_backup_stop``, an error in the copy never stops the backup
(closing the session aborts it), and a refused backup is a precise Unavailable.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from argon.compute.backup import online_backup
from argon.errors import Unavailable
from argon.pg import Lsn

LABEL = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"


class FakeSession:
    def __init__(self, refuse: bool = False) -> None:
        self.sql: list[str] = []
        self.closed = False
        self.refuse = refuse

    def __enter__(self) -> FakeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True

    def execute(self, query: str, params: Any = None) -> FakeSession:
        self.sql.append(query if params is None else f"{query} {params}")
        self._last = query
        if self.refuse and "pg_backup_start" in query:
            raise psycopg.errors.ObjectNotInPrerequisiteState(
                "WAL level not sufficient for making an online backup")
        return self

    def fetchone(self) -> tuple[object, ...]:
        if "pg_settings" in self._last:
            return ("16777216",) if "wal_segment_size" in self.sql[-1] else ("log",)
        return ("0/2000100", LABEL, None)


def test_the_copy_runs_inside_the_backup_window() -> None:
    session = FakeSession()
    connect = lambda: session  # noqa: E731
    with online_backup(connect, "argon branch tl-2") as window:  # type: ignore[arg-type]
        assert (window.wal_segment_size, window.log_directory) == (16 * 1024 * 1024, "log")
        assert "pg_backup_start" in session.sql[-1] and "argon branch tl-2" in session.sql[-1]
        assert window.stopped is None
    assert "pg_backup_stop" in session.sql[-1] and session.closed
    assert window.stopped is not None
    assert (window.stopped.lsn, window.stopped.labelfile, window.stopped.spcmapfile) == (
        Lsn.parse("0/2000100"), LABEL, "")


def test_a_failed_copy_never_stops_the_backup() -> None:
    session = FakeSession()
    with pytest.raises(OSError, match="disk"):
        with online_backup(lambda: session, "x"):  # type: ignore[arg-type,return-value]
            raise OSError("disk full")
    assert not any("pg_backup_stop" in q for q in session.sql) and session.closed


def test_a_refused_backup_says_what_to_do() -> None:
    session = FakeSession(refuse=True)
    with pytest.raises(Unavailable, match="could not run an online backup.*branch it stopped"):
        with online_backup(lambda: session, "x"):  # type: ignore[arg-type,return-value]
            pytest.fail("the block must not run")
    assert session.closed
