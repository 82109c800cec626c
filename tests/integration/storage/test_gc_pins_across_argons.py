"""A pin taken by one Argon process keeps another process's history GC away.

Two coordinators on one real Postgres metadata database stand for two Argon processes
sharing the timelines: A pins a timeline (as a restore or a branch at a past point
does while it reads history), B runs GC over it with a window that would remove old
snapshots and WAL.  Nothing goes while A's pin is held; once released, B's GC collects.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from argon.control.coordinator import Coordinator, coordinator_for
from argon.control.pins import CoordinatedPins
from argon.meta.db import open_database
from tests.fixtures.metadata_pg import MetadataPg
from tests.fixtures.storage import running
from tests.integration.storage.conftest import StorageEnv


@pytest.fixture
def two_coordinators(metadata_pg: MetadataPg) -> Iterator[tuple[Coordinator, Coordinator]]:
    url = metadata_pg.new_database("pins")
    engines = [open_database(url), open_database(url)]
    a, b = (coordinator_for(e) for e in engines)
    yield a, b
    for c in (a, b):
        c.close()
    for e in engines:
        e.dispose()


def test_a_pin_held_by_one_argon_stops_the_others_gc(
        env18: StorageEnv, two_coordinators: tuple[Coordinator, Coordinator]) -> None:
    a, b = two_coordinators
    env18.storage.pins = CoordinatedPins(b)          # the storage B's GC runs on
    env18.init("main")
    main = env18.start("main")
    with main.connect() as conn:
        conn.autocommit = True
        conn.execute("CREATE TABLE seq (id int)")
        for i in range(4):          # segments of history, a snapshot after each
            conn.execute("INSERT INTO seq VALUES (%s)", [i])
            conn.execute("SELECT pg_switch_wal()")
            env18.storage.snapshot_running("main", running(main))
    before = env18.storage.snapshots("main")
    window = {"main": datetime.now(UTC) + timedelta(seconds=1)}   # all of it is old
    with CoordinatedPins(a).pin("main"):
        plan = env18.storage.collect_garbage(["main"], window, set())
        assert plan.deletions == [], "B's GC removed history that A's pin holds"
        assert env18.storage.snapshots("main") == before
    plan = env18.storage.collect_garbage(["main"], window, set())
    assert plan.deletions, "nothing was collected once the pin was released"
    assert len(env18.storage.snapshots("main")) < len(before)
