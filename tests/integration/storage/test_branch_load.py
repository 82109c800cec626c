"""Branching a parent that is busy: pgbench keeps writing while the branch is taken."""

from __future__ import annotations

import subprocess
import time

from tests.fixtures.storage import pg_timeline
from tests.integration.storage.conftest import StorageEnv


def test_branch_under_pgbench_load_keeps_the_tpcb_invariant(env18: StorageEnv) -> None:
    env18.init("main")
    main = env18.start("main")
    base = [env18.install.bin("pgbench"), "-h", str(main.socket_dir), "-p", str(main.port),
            "-U", "cloud_admin"]
    subprocess.run([*base, "-i", "-q", "-s", "1", "postgres"], check=True,  # type: ignore[call-overload]
                   capture_output=True, **env18.owner.popen_kwargs())
    load = subprocess.Popen([*base, "-c", "2", "-T", "120", "-n", "postgres"],  # type: ignore[call-overload]
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            **env18.owner.popen_kwargs())
    try:
        with main.connect() as conn:  # wait until transactions are really flowing
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                row = conn.execute("SELECT count(*) FROM pgbench_history").fetchone()
                if row is not None and row[0] > 200:
                    break
                time.sleep(0.05)
        env18.branch("dev", "main")
        assert load.poll() is None, "the parent's clients must not be stopped by a branch"
        with main.connect() as conn:
            row = conn.execute("SELECT count(*) FROM pgbench_history").fetchone()
            before = row[0] if row else 0
            time.sleep(0.3)
            row = conn.execute("SELECT count(*) FROM pgbench_history").fetchone()
            assert row is not None and row[0] > before, "the parent's writes kept going"
    finally:
        load.terminate()
        load.wait(30)

    dev = env18.start("dev")
    with dev.connect() as conn:
        sums = conn.execute(
            "SELECT (SELECT sum(abalance) FROM pgbench_accounts),"
            " (SELECT sum(tbalance) FROM pgbench_tellers),"
            " (SELECT sum(bbalance) FROM pgbench_branches),"
            " (SELECT coalesce(sum(delta), 0) FROM pgbench_history),"
            " (SELECT count(*) FROM pgbench_history)").fetchone()
        assert sums is not None
        assert sums[0] == sums[1] == sums[2] == sums[3]
        assert sums[4] > 200  # the branch holds the writes made before it
        with main.connect() as parent:
            assert pg_timeline(conn) != pg_timeline(parent)
