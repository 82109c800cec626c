"""A branch-like start (recovery.signal) returns after promotion; session counting."""

from __future__ import annotations

from collections.abc import Callable

import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from argon.compute import ComputeManager, ComputeSpec
from tests.fixtures.compute import place

IMMEDIATE_PROMOTE = """\
restore_command = 'false'
recovery_target = 'immediate'
recovery_target_action = 'promote'
"""
# A cleanly stopped cluster has no WAL after its shutdown checkpoint, and Postgres
# refuses an 'immediate' target that no replayed record reaches ("recovery ended before
# configured recovery target was reached"): storage recovers such a copy to the end of
# its WAL instead, which promotes just the same.
END_OF_WAL = "restore_command = 'false'\n"


def _as_branch(spec: ComputeSpec, owner_chown: Callable[[Path], None], conf: str) -> None:
    for name, text in (("argon.storage.conf", conf), ("recovery.signal", "")):
        (place(spec).pgdata / name).write_text(text)
        owner_chown(place(spec).pgdata / name)


def _assert_promoted(spec: ComputeSpec, mgr: ComputeManager) -> None:
    # start() has returned: the very first session must already be read-write
    with mgr.connect(spec) as conn:
        in_recovery, walfile = conn.execute(
            "SELECT pg_is_in_recovery(), pg_walfile_name(pg_current_wal_lsn())").fetchone()
        conn.execute("CREATE TABLE written_after_promotion (x int)")
    assert in_recovery is False
    assert walfile.startswith("00000002"), "promotion starts a new Postgres timeline"
    assert not (place(spec).pgdata / "recovery.signal").exists()


@pytest.mark.parametrize("version", [18, 15])
def test_copy_of_stopped_cluster_with_recovery_signal_returns_after_promotion(
        version: int, make_compute_spec: Callable[..., ComputeSpec],
        compute_manager: ComputeManager) -> None:
    spec = make_compute_spec(version)   # a copy of a cleanly stopped cluster
    _as_branch(spec, compute_manager.owner.chown, END_OF_WAL)
    compute_manager.start_process(spec)
    _assert_promoted(spec, compute_manager)


def test_online_copy_with_immediate_target_returns_after_promotion(
        make_compute_spec: Callable[..., ComputeSpec], compute_manager: ComputeManager) -> None:
    parent = make_compute_spec()
    compute_manager.start_process(parent)
    child = make_compute_spec()
    shutil.rmtree(place(child).pgdata)
    with compute_manager.connect(parent) as conn:
        conn.execute("CREATE TABLE before_branch AS SELECT generate_series(1, 100) AS x")
        conn.execute("SELECT pg_backup_start('compute-test', fast => true)")
        subprocess.run(["cp", "-a", str(place(parent).pgdata), str(place(child).pgdata)],
                       check=True)
        label = conn.execute("SELECT labelfile FROM pg_backup_stop(false)").fetchone()[0]
        conn.execute("INSERT INTO before_branch VALUES (-1)")   # after the branch point
    subprocess.run(f"cp -a {place(parent).pgdata}/pg_wal/0* {place(child).pgdata}/pg_wal/",
                   shell=True, check=True)
    (place(child).pgdata / "postmaster.pid").unlink()
    (place(child).pgdata / "backup_label").write_text(label)
    compute_manager.owner.chown(place(child).pgdata / "backup_label")
    _as_branch(child, compute_manager.owner.chown, IMMEDIATE_PROMOTE)
    compute_manager.start_process(child)
    _assert_promoted(child, compute_manager)
    with compute_manager.connect(child) as conn:
        assert conn.execute("SELECT count(*), min(x) FROM before_branch").fetchone() == (100, 1)
    assert "recovery stopping after reaching consistency" in place(child).log_path.read_text()


def test_client_sessions_ignores_argons_own(make_compute_spec: Callable[..., ComputeSpec],
                                            compute_manager: ComputeManager) -> None:
    spec = make_compute_spec()
    compute_manager.start_process(spec)
    with compute_manager.connect(spec) as own, compute_manager.connect(spec, dbname="template1"):
        assert own.execute("SELECT current_setting('application_name')").fetchone() == ("argon",)
        assert compute_manager.client_sessions(spec) == 0
        port = compute_manager.pid(spec) and spec.port
        with psycopg.connect(host=str(place(spec).socket_dir), port=port, user="cloud_admin",
                             password=spec.admin_password, dbname="postgres",
                             application_name="psql"):
            assert compute_manager.client_sessions(spec) == 1
            with psycopg.connect(host=str(place(spec).socket_dir), port=port, user="cloud_admin",
                                 password=spec.admin_password, dbname="postgres"):
                assert compute_manager.client_sessions(spec) == 2
        assert compute_manager.client_sessions(spec) == 0
