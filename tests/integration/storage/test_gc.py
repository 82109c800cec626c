"""History GC on real Postgres: a short window removes old snapshots and WAL, and what
a branch point needs stays reachable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from argon.compute.backup import switch_wal
from argon.pg import Lsn
from argon.storage.pitr import PointInTime
from tests.fixtures.storage import running
from tests.integration.storage.conftest import StorageEnv


def test_gc_with_a_short_window_keeps_branch_points_working(env18: StorageEnv) -> None:
    """Snapshots and WAL older than the window go; a child's branch point stays reachable."""
    env = env18
    env.init("main")
    main = env.start("main")
    with main.connect() as conn:
        conn.autocommit = True
        conn.execute("CREATE TABLE seq (id int)")
        for i in range(1, 6):   # five segments of history, a snapshot after each
            conn.execute("INSERT INTO seq VALUES (%s)", [i])
            conn.execute("SELECT pg_switch_wal()")
            env.storage.snapshot_running("main", running(main))
        point = Lsn.parse(conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0])  # type: ignore[index]
        conn.execute("INSERT INTO seq VALUES (6)")
        for _ in range(3):
            conn.execute("SELECT pg_switch_wal()")
            conn.execute("INSERT INTO seq VALUES (7)")
        live = env.storage.seal_wal("main", switch_wal(conn))
    env.storage.branch_timeline_at("child", "main", PointInTime(lsn=point), live)
    before = env.storage.snapshots("main")
    archive: Path = env.storage.archive_dir("main")
    segs_before = sorted(p.name for p in archive.iterdir() if len(p.name) == 24)
    # everything sampled so far is older than the window: only branch points hold history
    window = {"main": datetime.now(UTC) + timedelta(seconds=1),
              "child": datetime.now(UTC) - timedelta(days=1)}
    plan = env.storage.collect_garbage(["main", "child"], window, set())
    after = env.storage.snapshots("main")
    assert len(after) < len(before) and plan.deletions
    assert all(s.lsn <= point for s in after[:1])
    segs_after = sorted(p.name for p in archive.iterdir() if len(p.name) == 24)
    assert len(segs_after) < len(segs_before)
    # the child's branch point is still reachable from what is left
    env.storage.delete_timeline("child")
    env.stop("main")
    env.storage.branch_timeline_at("again", "main", PointInTime(lsn=point), None)
    server = env.start("again")
    with server.connect() as conn:
        rows = [r[0] for r in conn.execute("SELECT id FROM seq ORDER BY id").fetchall()]
    assert rows == [1, 2, 3, 4, 5]
