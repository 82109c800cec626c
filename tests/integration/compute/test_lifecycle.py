"""initdb, start, query, stop, idempotence and re-adoption against real Postgres."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from argon.compute import ComputeManager, ComputeSpec, ComputeState, initdb
from argon.errors import Unavailable
from argon.pg import OsUser
from tests.fixtures.common import free_port
from tests.fixtures.compute import install_for, make_test_layout, place, spec_on


@pytest.mark.parametrize("version", [18, 15])
def test_initdb_start_query_stop(version: int, argon_tmp: Path, pg_user: OsUser) -> None:
    install = install_for(version, pg_user, argon_tmp / "pgbin")
    pgdata = argon_tmp / "pgdata"
    initdb(install, pgdata, pg_user)
    layout = make_test_layout(argon_tmp)
    spec = spec_on(layout, "ep-life", pgdata, install, port=free_port(),
                   pg_settings={"work_mem": "12MB"}, admin_password="life-admin-pw")
    mgr = ComputeManager(pg_user, layout)
    proc = mgr.start_process(spec)   # initdb gave no password: the first start sets it
    try:
        assert proc.port == spec.port and mgr.pid(spec) == proc.pid
        assert mgr.state(spec) is ComputeState.ACTIVE
        with mgr.connect(spec) as conn:
            num, user, work_mem, in_rec = conn.execute(
                "SELECT current_setting('server_version_num')::int, current_user, "
                "current_setting('work_mem'), pg_is_in_recovery()").fetchone()
        assert num // 10000 == version
        assert (user, work_mem, in_rec) == ("cloud_admin", "12MB", False)
        # no TCP at all (the proxy's unix socket path is the only door), and the socket
        # asks everyone for a password (scram)
        with pytest.raises(psycopg.OperationalError, match="Connection refused"):
            psycopg.connect(host="127.0.0.1", port=spec.port, user="cloud_admin",
                            dbname="postgres", password="wrong")
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host=str(place(spec).socket_dir), port=spec.port, user="cloud_admin",
                            dbname="postgres", password="", passfile="/nonexistent/.pgpass")
        assert oct(place(spec).socket_dir.stat().st_mode & 0o777) == "0o700"
    finally:
        mgr.stop(spec)
    assert mgr.pid(spec) is None
    assert mgr.state(spec) is ComputeState.IDLE
    with pytest.raises(Unavailable, match="not running"):
        mgr.connect(spec)
    mgr.stop(spec)  # idempotent


def test_start_is_idempotent(make_compute_spec: Callable[..., ComputeSpec],
                             compute_manager: ComputeManager) -> None:
    spec = make_compute_spec()
    first = compute_manager.start_process(spec)
    second = compute_manager.start_process(spec)
    assert second.pid == first.pid
    again = ComputeManager(compute_manager.owner, compute_manager.layout)
    assert again.start_process(spec).pid == first.pid


def test_fresh_manager_readopts_running_postmaster(
        make_compute_spec: Callable[..., ComputeSpec], compute_manager: ComputeManager) -> None:
    spec = make_compute_spec()
    pid = compute_manager.start_process(spec).pid
    # as after an Argon restart
    restarted = ComputeManager(compute_manager.owner, compute_manager.layout)
    assert restarted.pid(spec) == pid
    with restarted.connect(spec) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    restarted.stop(spec, "smart")
    assert restarted.pid(spec) is None and compute_manager.pid(spec) is None


def _write_pid(pgdata: Path, pid: int, template: str) -> None:
    lines = template.split("\n")
    lines[0] = str(pid)
    (pgdata / "postmaster.pid").write_text("\n".join(lines))


def test_stale_pidfile_is_not_adopted(make_compute_spec: Callable[..., ComputeSpec],
                                      compute_manager: ComputeManager) -> None:
    spec = make_compute_spec()
    compute_manager.start_process(spec)
    text = (place(spec).pgdata / "postmaster.pid").read_text()
    compute_manager.stop(spec)

    dead = subprocess.Popen(["true"])
    dead.wait()
    _write_pid(place(spec).pgdata, dead.pid, text)
    assert compute_manager.pid(spec) is None

    unrelated = subprocess.Popen(["sleep", "30"])
    try:
        _write_pid(place(spec).pgdata, unrelated.pid, text)
        assert compute_manager.pid(spec) is None
        _write_pid(place(spec).pgdata, os.getpid(), text)
        assert compute_manager.pid(spec) is None
        # Postgres itself would refuse a pid file naming a live process; start copes
        _write_pid(place(spec).pgdata, unrelated.pid, text)
        proc = compute_manager.start_process(spec)
        assert proc.pid != unrelated.pid and compute_manager.pid(spec) == proc.pid
        assert unrelated.poll() is None  # left alone
    finally:
        unrelated.kill()
        unrelated.wait()


def test_pid_of_another_data_dirs_postmaster_is_rejected(
        make_compute_spec: Callable[..., ComputeSpec], compute_manager: ComputeManager) -> None:
    a, b = make_compute_spec(), make_compute_spec()
    pid_a = compute_manager.start_process(a).pid
    compute_manager.start_process(b)
    text = (place(b).pgdata / "postmaster.pid").read_text()
    compute_manager.stop(b)
    _write_pid(place(b).pgdata, pid_a, text)   # e.g. a data dir cloned with its pid file
    assert compute_manager.pid(b) is None
    assert compute_manager.pid(a) == pid_a


def test_port_zero_picks_a_free_port(make_compute_spec: Callable[..., ComputeSpec],
                                     compute_manager: ComputeManager) -> None:
    spec = make_compute_spec(port=0)
    proc = compute_manager.start_process(spec)
    assert proc.port > 0
    with compute_manager.connect(spec) as conn:   # found through postmaster.pid
        assert conn.execute("SELECT current_setting('port')::int").fetchone() == (proc.port,)
