"""The coordinator on a real Postgres metadata database: two Argons (two coordinators, two
sessions) exclude each other per object, exactly one leads the reconciler, and a holder
killed with SIGKILL frees its locks, claims and leadership at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from sqlalchemy import Engine

from argon.control.coordinator import LocalCoordinator, coordinator_for
from argon.errors import Locked
from argon.meta.db import open_database
from tests.fixtures.metadata_pg import MetadataPg


def test_an_object_held_by_one_argon_is_locked_for_the_other(pair) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    with a.hold("branch:x"):
        with pytest.raises(Locked, match="branch x is locked"):
            with b.hold("branch:x", what="branch x"):
                pass
        started = time.monotonic()
        with pytest.raises(Locked):
            with b.hold("branch:x", wait=0.4):
                pass
        assert time.monotonic() - started >= 0.35     # it waited before giving up
        with b.hold("branch:other"):                  # other objects stay free
            pass
    with b.hold("branch:x"):                          # released with the block
        pass


def test_wait_for_blocks_until_the_other_argon_releases(pair) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    got = threading.Event()
    entered = threading.Event()

    def waiter() -> None:
        entered.set()
        with b.wait_for("ep:1"):
            got.set()

    with a.wait_for("ep:1"):
        thread = threading.Thread(target=waiter)
        thread.start()
        entered.wait(5)
        assert not got.wait(0.5), "the other Argon entered while the lock was held"
    assert got.wait(5)
    thread.join(5)


def test_threads_of_one_argon_still_exclude_each_other_and_reenter(pair) -> None:  # type: ignore[no-untyped-def]
    a, _ = pair
    release, entered = threading.Event(), threading.Event()

    def holder() -> None:
        with a.hold("project:p"):
            with a.hold("project:p"):                 # re-entrant in its own thread
                entered.set()
                release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    entered.wait(5)
    with pytest.raises(Locked):                       # the session is shared, the lock not
        with a.hold("project:p"):
            pass
    release.set()
    thread.join(5)
    with a.hold("project:p"):
        pass


def test_exactly_one_argon_leads(pair) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    assert a.try_lead() and a.leading
    assert not b.try_lead() and not b.leading
    assert a.try_lead(), "a leader keeps leading"
    assert "this process leads" in a.describe() and "another process leads" in b.describe()
    a.close()                                          # a clean stop hands over
    assert b.try_lead()


def test_claims_are_seen_by_the_other_argon(pair) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    a.claim("op:1")
    assert b.claimed("op:1") and a.claimed("op:1")
    assert not b.claimed("op:2")
    a.release_claim("op:1")
    assert not b.claimed("op:1")


HOLDER = textwrap.dedent("""
    import sys, time
    from argon.control.coordinator import coordinator_for
    from argon.meta.db import open_database
    c = coordinator_for(open_database(sys.argv[1]))
    assert c.try_lead()
    c.claim("op:crashed")
    with c.hold("branch:b1"):
        print("ready", flush=True)
        time.sleep(600)
""")


def test_a_killed_holder_frees_its_locks_claims_and_leadership(
        meta_url: str, engines: tuple[Engine, Engine]) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, meta_url], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    other = coordinator_for(engines[0])
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert not other.try_lead()
        assert other.claimed("op:crashed")
        with pytest.raises(Locked):
            with other.hold("branch:b1"):
                pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while not other.try_lead():                    # the server notices the dead session
            assert time.monotonic() < deadline, "leadership did not move after kill -9"
            time.sleep(0.05)
        assert not other.claimed("op:crashed")
        with other.hold("branch:b1"):
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        other.close()


def test_a_broken_lock_session_gives_up_leadership(metadata_pg: MetadataPg, meta_url: str,
                                                   pair) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    assert a.try_lead()
    with metadata_pg.server.connect() as admin:        # the database drops a's session
        admin.execute("SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_database d "
                      "ON d.oid = l.database WHERE l.locktype = 'advisory' AND d.datname = %s",
                      (meta_url.rsplit("/", 1)[1],))
    assert not a.try_lead() and not a.leading          # noticed at the next check
    assert b.try_lead()
    assert not a.try_lead()                            # reconnected, but b leads now


def test_sqlite_metadata_gets_the_in_process_coordinator(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = open_database(f"sqlite:///{tmp_path / 'm.db'}")
    c = coordinator_for(engine)
    assert type(c) is LocalCoordinator and c.try_lead() and c.leading
    c.claim("op:1")
    assert c.claimed("op:1")
    c.release_claim("op:1")
    assert not c.claimed("op:1")
    engine.dispose()
