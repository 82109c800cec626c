"""Branching at a past LSN or time on real Postgres: exactly the rows committed by then."""

from __future__ import annotations

import time
from datetime import datetime

import psycopg
import pytest

from argon.compute.backup import switch_wal
from argon.errors import Unavailable
from argon.pg import Lsn
from argon.storage.pitr import PointInTime
from tests.integration.storage.conftest import StorageEnv


def _write(conn: psycopg.Connection, first: int, n: int) -> list[tuple[int, Lsn, datetime]]:
    """Insert rows first..first+n-1, one transaction each; return (id, lsn after, time)."""
    out = []
    for i in range(first, first + n):
        conn.execute("INSERT INTO seq VALUES (%s)", [i])
        row = conn.execute("SELECT pg_current_wal_insert_lsn()::text, clock_timestamp()").fetchone()
        assert row is not None
        out.append((i, Lsn.parse(row[0]), row[1]))
        time.sleep(0.01)
    return out


def _rows(env: StorageEnv, tl: str) -> list[int]:
    server = env.start(tl)
    with server.connect() as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM seq ORDER BY id").fetchall()]
    env.stop(tl)
    return ids


def test_branches_at_lsns_and_times_hold_exactly_what_was_committed(env18: StorageEnv) -> None:
    env = env18
    env.init("main")
    main = env.start("main")
    log: list[tuple[int, Lsn, datetime]] = []
    with main.connect() as conn:
        conn.autocommit = True
        conn.execute("CREATE TABLE seq (id int PRIMARY KEY)")
        log += _write(conn, 1, 10)
        conn.execute("CHECKPOINT")
        log += _write(conn, 11, 10)
        conn.execute("SELECT pg_switch_wal()")
        log += _write(conn, 21, 10)
    # a plain branch in the middle does not disturb the parent's history
    env.branch("mid", "main")
    with main.connect() as conn:
        conn.autocommit = True
        log += _write(conn, 31, 10)
        live = env.storage.seal_wal("main", switch_wal(conn))
    assert live.head_lsn >= log[-1][1]
    picks = {"lsn-3": log[2], "lsn-15": log[14], "lsn-33": log[32]}
    for name, (i, lsn, _t) in picks.items():
        env.storage.branch_timeline_at(name, "main", PointInTime(lsn=lsn), live)
    _i, _l, t25 = log[24]
    env.storage.branch_timeline_at("time-25", "main", PointInTime(time=t25), live)
    env.stop("main")
    # stopped parent: the unarchived tail is read from its pg_wal
    env.storage.branch_timeline_at("stopped-38", "main", PointInTime(lsn=log[37][1]), None)
    assert _rows(env, "lsn-3") == list(range(1, 4))
    assert _rows(env, "lsn-15") == list(range(1, 16))
    assert _rows(env, "lsn-33") == list(range(1, 34))
    assert _rows(env, "time-25") == list(range(1, 26))
    assert _rows(env, "stopped-38") == list(range(1, 39))
    assert env.storage.manifest("time-25").branch_lsn_exact
    # branch of a branch, at a point on the child's own timeline
    child = env.start("lsn-33")
    with child.connect() as conn:
        conn.autocommit = True
        conn.execute("INSERT INTO seq VALUES (1000)")
        row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        conn.execute("INSERT INTO seq VALUES (1001)")
        live_child = env.storage.seal_wal("lsn-33", switch_wal(conn))
    env.storage.branch_timeline_at("grand", "lsn-33", PointInTime(lsn=Lsn.parse(row[0])),
                                   live_child)
    env.stop("lsn-33")
    assert _rows(env, "grand") == [*range(1, 34), 1000]


def test_no_snapshot_left_is_a_clear_error(env18: StorageEnv) -> None:
    env = env18
    env.init("main")
    for snap in env.storage.snapshots("main"):
        from argon.storage.snapshots import remove_snapshot
        remove_snapshot(env.storage.root / "main", snap)
    main = env.start("main")
    with main.connect() as conn:
        live = env.storage.seal_wal("main", switch_wal(conn))
    with pytest.raises(Unavailable, match="no snapshot"):
        env.storage.branch_timeline_at("x", "main", PointInTime(lsn=live.head_lsn), live)
    assert not env.storage.exists("x")
