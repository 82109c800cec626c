"""Open sessions and timeline pins behind the coordinator.

In one process (SQLite metadata) they are counts in memory.  On a real Postgres metadata
database two coordinators stand for two Argon processes: the sessions one holds on an
endpoint and the pins it holds on a timeline are seen by the other (the leader's
suspender, another process's GC), and a holder killed with SIGKILL, or whose session the
server drops, leaves nothing behind that would keep a compute awake or history pinned
for ever.  Two ``EndpointRuntime``s on one database: a session through one, and the use
it stored, count for the other's idle check.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from argon.control.context import ControlContext
from argon.control.coordinator import LocalCoordinator, coordinator_for
from argon.control.operations import OperationLog
from argon.control.pins import CoordinatedPins
from argon.control.runtime import EndpointRuntime
from argon.control.secretbox import SecretBox
from argon.meta import tables as t
from argon.meta.db import open_database
from argon.pg import OsUser
from argon.settings import Settings
from argon.storage import CopyDriver, Storage
from argon.storage.pins import LocalPins
from tests.fixtures.metadata_pg import MetadataPg


def wait_until(check, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_in_process_sessions_and_pins_are_counted() -> None:
    c = LocalCoordinator()
    assert not c.shared_across_processes
    c.sessions_opened("ep-1")
    c.sessions_opened("ep-1")
    c.sessions_closed("ep-1")
    assert c.has_sessions("ep-1") and not c.has_sessions("ep-2")
    c.sessions_closed("ep-1")
    assert not c.has_sessions("ep-1")
    c.sessions_closed("ep-1")                  # one close too many does not go negative
    c.sessions_opened("ep-1")
    assert c.has_sessions("ep-1")
    pins = CoordinatedPins(c)
    with pins.pin("tl-1", "tl-2"):
        with pins.pin("tl-1"):
            assert pins.pinned(["tl-1", "tl-2", "tl-3"]) == {"tl-1", "tl-2"}
        assert pins.pinned(["tl-1"]) == {"tl-1"}
    assert pins.pinned(["tl-1", "tl-2"]) == set()


def test_storage_default_pins_are_in_memory() -> None:
    pins = LocalPins()
    with pins.pin("tl-1"):
        assert pins.pinned(["tl-1", "tl-2"]) == {"tl-1"}
    assert pins.pinned(["tl-1"]) == set()


def test_sessions_held_by_one_argon_are_seen_by_the_other(pair) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    assert a.shared_across_processes
    assert not b.has_sessions("ep-1")
    a.sessions_opened("ep-1")
    a.sessions_opened("ep-1")
    assert a.has_sessions("ep-1", anywhere=False)   # at once in a's own view
    wait_until(lambda: b.has_sessions("ep-1"), "b does not see a's sessions")
    assert a.has_sessions("ep-1")
    assert not b.has_sessions("ep-1", anywhere=False)   # b's own view: none of its own
    assert not b.has_sessions("ep-2")
    a.sessions_closed("ep-1")
    time.sleep(0.3)
    assert b.has_sessions("ep-1"), "one of a's two sessions is still open"
    b.sessions_opened("ep-1")                 # both hold it: shared, not exclusive
    a.sessions_closed("ep-1")
    wait_until(lambda: a.has_sessions("ep-1"), "a does not see b's session")  # b's, seen by a
    time.sleep(0.3)
    assert a.has_sessions("ep-1")
    b.sessions_closed("ep-1")
    wait_until(lambda: not a.has_sessions("ep-1") and not b.has_sessions("ep-1"),
               "closed sessions are still seen")


def test_many_names_whatever_their_key_sign(pair) -> None:  # type: ignore[no-untyped-def]
    """Keys are signed 64-bit numbers split in two halves by pg_locks: every one is
    found again, negative or not."""
    a, b = pair
    names = [f"ep-{i}" for i in range(40)]
    for n in names[::2]:
        a.sessions_opened(n)
    wait_until(lambda: {n for n in names if b.has_sessions(n)} == set(names[::2]),
               "b does not see exactly a's sessions")
    pins_a, pins_b = CoordinatedPins(a), CoordinatedPins(b)
    with pins_a.pin(*names[1::2]):
        assert pins_b.pinned(names) == set(names[1::2])
    assert pins_b.pinned(names) == set()


def test_a_pin_taken_by_one_argon_is_seen_by_the_others_gc(pair) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    pins_a, pins_b = CoordinatedPins(a), CoordinatedPins(b)
    with pins_a.pin("tl-1"):
        with pins_b.pin("tl-1", "tl-2"):       # pins share: both hold tl-1
            assert pins_a.pinned(["tl-1", "tl-2", "tl-3"]) == {"tl-1", "tl-2"}
        assert pins_b.pinned(["tl-1", "tl-2"]) == {"tl-1"}
    assert pins_b.pinned(["tl-1", "tl-2"]) == set()


def test_a_broken_session_takes_its_holds_again_when_it_reconnects(
        metadata_pg: MetadataPg, meta_url: str, pair) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    a.sessions_opened("ep-1")
    wait_until(lambda: b.has_sessions("ep-1"), "b does not see a's session")
    pins_a = CoordinatedPins(a)
    with pins_a.pin("tl-1"):
        with metadata_pg.server.connect() as admin:   # the database drops a's session
            admin.execute("SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN "
                          "pg_database d ON d.oid = l.database WHERE l.locktype = "
                          "'advisory' AND d.datname = %s", (meta_url.rsplit("/", 1)[1],))
        wait_until(lambda: not b.has_sessions("ep-1"), "the dropped session's locks stayed")
        assert a.has_sessions("ep-1", anywhere=False)  # a's sessions are still open
        a.try_lead()                                    # notices the broken session
        # a's syncer reconnects and takes the holds again
        wait_until(lambda: b.has_sessions("ep-1"), "a's sessions were not taken again")
        wait_until(lambda: CoordinatedPins(b).pinned(["tl-1"]) == {"tl-1"},
                   "a's pin was not taken again")
    a.sessions_closed("ep-1")
    wait_until(lambda: not b.has_sessions("ep-1"), "a closed session is still seen")
    assert CoordinatedPins(b).pinned(["tl-1"]) == set()


HOLDER = textwrap.dedent("""
    import sys, time
    from argon.control.coordinator import coordinator_for
    from argon.control.pins import CoordinatedPins
    from argon.meta.db import open_database
    c = coordinator_for(open_database(sys.argv[1]))
    c.sessions_opened("ep-busy")
    with CoordinatedPins(c).pin("tl-read"):
        print("ready", flush=True)
        time.sleep(600)
""")


def test_a_killed_argon_leaves_no_sessions_or_pins_behind(
        meta_url: str, engines: tuple[Engine, Engine]) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, meta_url], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    other = coordinator_for(engines[0])
    pins = CoordinatedPins(other)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert other.has_sessions("ep-busy")
        assert pins.pinned(["tl-read", "tl-other"]) == {"tl-read"}
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        wait_until(lambda: not other.has_sessions("ep-busy"),
                   "a killed process's sessions still keep the endpoint awake")
        wait_until(lambda: not pins.pinned(["tl-read"]),
                   "a killed process's pin still keeps GC away")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        other.close()


def test_sqlite_metadata_counts_sessions_in_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = open_database(f"sqlite:///{tmp_path / 'm.db'}")
    c = coordinator_for(engine)
    assert type(c) is LocalCoordinator and not c.shared_across_processes
    c.sessions_opened("ep-1")
    assert c.has_sessions("ep-1")
    c.sessions_closed("ep-1")
    assert not c.has_sessions("ep-1")
    engine.dispose()


# -- two runtimes on one metadata database: the leader's idle view of the other's use ----

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make_runtime(home: Path, engine: Engine) -> EndpointRuntime:
    """The activity side of an Argon process's runtime (no compute is started here)."""
    (home / "secrets").mkdir(parents=True, exist_ok=True)
    owner = OsUser("me", os.getuid(), os.getgid())
    ctx = ControlContext(settings=Settings(home=home), engine=engine,
                         storage=Storage(home / "timelines", CopyDriver(), owner),
                         computes=None, poolers=None,  # type: ignore[arg-type]
                         owner=owner,
                         secrets=SecretBox(home / "secrets" / "fernet.key"),
                         locks=coordinator_for(engine))
    return EndpointRuntime(ctx, OperationLog(ctx))


def add_endpoint(rt: EndpointRuntime) -> None:
    """Endpoint ep-1, active, as the metadata of a running compute says."""
    with rt.ctx.tx() as conn:
        conn.execute(t.projects.insert().values(
            id="p-1", name="p", region_id="local", pg_version=18,
            history_retention_seconds=3600, default_endpoint_settings={}, settings={},
            created_at=NOW, updated_at=NOW))
        conn.execute(t.branches.insert().values(
            id="br-1", project_id="p-1", timeline_id="tl-main", name="main", state="ready",
            created_at=NOW, updated_at=NOW))
        conn.execute(t.endpoints.insert().values(
            id="ep-1", project_id="p-1", branch_id="br-1", type="read_write",
            state="active", min_cu=0.25, max_cu=0.25, suspend_timeout_seconds=300,
            pg_settings={}, created_at=NOW, updated_at=NOW))


@pytest.fixture
def runtimes(tmp_path: Path, engines: tuple[Engine, Engine]
             ) -> Iterator[tuple[EndpointRuntime, EndpointRuntime]]:
    a, b = (make_runtime(tmp_path / name, e) for name, e in zip("ab", engines, strict=True))
    add_endpoint(a)
    yield a, b
    for rt in (a, b):
        rt.ctx.locks.close()


def stored_last_active(rt: EndpointRuntime) -> datetime | None:
    with rt.ctx.tx() as conn:
        return conn.execute(select(t.endpoints.c.last_active).where(
            t.endpoints.c.id == "ep-1")).scalar()


def test_a_session_through_one_runtime_is_use_for_the_others_idle_check(runtimes) -> None:  # type: ignore[no-untyped-def]
    a, b = runtimes
    a.touch("ep-1")
    a._last_seen["ep-1"] -= 600   # the leader's own last sight of it: ten minutes ago
    assert not a.recently_active("ep-1", 60)
    b.session_started("ep-1")
    wait_until(lambda: a.has_sessions("ep-1"), "the leader does not see b's session")
    assert a.recently_active("ep-1", 60)
    assert a.idle_seconds("ep-1") is not None     # a has none of its own open
    b.session_ended("ep-1")
    wait_until(lambda: not a.has_sessions("ep-1"), "b's closed session is still seen")
    # b's use is stored (once per ACTIVITY_WRITE at most): the leader counts it as recent
    wait_until(lambda: stored_last_active(b) is not None, "b stored no activity")
    last_active = stored_last_active(a)
    assert a.recently_active("ep-1", 60)
    idle = a.idle_seconds("ep-1", last_active)
    assert idle is not None and idle < 60
    # ... and lets it go idle once that use is older than the limit
    a.ctx.clock = lambda: datetime.now(UTC) + timedelta(seconds=120)
    assert not a.recently_active("ep-1", 60)
    idle = a.idle_seconds("ep-1", last_active)
    assert idle is not None and idle > 60


def test_sqlite_metadata_stores_no_activity_per_session(tmp_path: Path) -> None:
    """One Argon per home: its own view is complete, a session costs no metadata write."""
    engine = open_database(f"sqlite:///{tmp_path / 'm.db'}")
    rt = make_runtime(tmp_path / "home", engine)
    add_endpoint(rt)
    rt.session_started("ep-1")
    assert rt.has_sessions("ep-1") and rt.idle_seconds("ep-1") is None
    rt.session_ended("ep-1")
    assert not rt.has_sessions("ep-1") and rt.recently_active("ep-1", 60)
    time.sleep(0.2)
    assert stored_last_active(rt) is None
    engine.dispose()
