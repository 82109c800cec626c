"""A wake lets its client in as soon as Postgres takes sessions, while the start still
checks cloud_admin's password and records itself (issue 15).  What a user must still
see: a first session that can write at once, a wake after a kill -9 that left a stale
postmaster.pid, a start that is recorded (and re-adopted after an Argon crash right
after the first row), a lying password marker repaired even when the client was let in
first, and pooled wakes (PgBouncer checks the roles the proxy knows by itself) that
see every change of the roles.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from argon.compute import ComputeAddress, ComputeManager, ComputeSpec, admin_auth
from argon.compute.pidfile import PIDFILE, PidFile
from tests.fixtures.argon_env import ArgonEnv, wait_operations
from tests.fixtures.common import no_current_pgbouncer
from tests.fixtures.compute import place
from tests.integration.proxy.pooled_project import create_pooled_project

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="kills computes run by the "
                                "Postgres account: needs root")


def new_project(env: ArgonEnv, name: str) -> dict[str, Any]:
    r = env.api("POST", "/projects", json={"project": {"name": name}})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def suspend(env: ArgonEnv, project: dict[str, Any]) -> None:
    ep = project["endpoints"][0]["id"]
    r = env.api("POST", f"/projects/{project['project']['id']}/endpoints/{ep}/suspend")
    assert r.status_code == 200, r.text


def endpoint(env: ArgonEnv, project: dict[str, Any]) -> dict[str, Any]:
    ep = project["endpoints"][0]["id"]
    r = env.api("GET", f"/projects/{project['project']['id']}/endpoints/{ep}")
    assert r.status_code == 200, r.text
    return r.json()["endpoint"]  # type: ignore[no-any-return]


def pgdata_of(env: ArgonEnv, uri: str) -> Path:
    with psycopg.connect(uri, autocommit=True) as conn:
        return Path(conn.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]


def wait_until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_first_session_of_a_wake_writes_at_once(argon_env: ArgonEnv) -> None:
    created = new_project(argon_env, "wake-writes")
    uri = created["connection_uris"][0]["connection_uri"]
    with argon_env.connect(uri) as conn:
        conn.execute("CREATE TABLE t (n int)")
    for n in range(3):
        suspend(argon_env, created)
        with argon_env.connect(uri) as conn:   # the wake: no pause, a write at once
            conn.execute("INSERT INTO t VALUES (%s)", (n,))
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
    with argon_env.connect(uri) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (3,)
    # the start was recorded though the client was let in before the records, and
    # each wake's operation (written beside the spawn) was finished
    wait_until(lambda: endpoint(argon_env, created)["current_state"] == "active")
    ep = created["endpoints"][0]["id"]

    def wake_operations() -> list[str]:
        ops = argon_env.api("GET", f"/projects/{created['project']['id']}/operations",
                            params={"limit": 100}).json()["operations"]
        return [o["status"] for o in ops
                if o["action"] == "start_compute" and o["endpoint_id"] == ep]
    wait_until(lambda: wake_operations().count("finished") >= 4)   # creation + 3 wakes
    assert set(wake_operations()) == {"finished"}, wake_operations()


def test_a_wake_after_kill9_with_a_stale_pid_file(argon_env: ArgonEnv) -> None:
    created = new_project(argon_env, "wake-kill9")
    uri = created["connection_uris"][0]["connection_uri"]
    with argon_env.connect(uri) as conn:
        conn.execute("CREATE TABLE t (n int)")
        conn.execute("INSERT INTO t VALUES (1)")
    pgdata = pgdata_of(argon_env, uri)
    pf = PidFile.read(pgdata)
    assert pf is not None
    os.kill(pf.pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pf.pid}").exists()
               or "Z" in Path(f"/proc/{pf.pid}/stat").read_text().split(")")[1][:3])
    assert (pgdata / PIDFILE).exists()   # left behind by the kill
    with argon_env.connect(uri) as conn:  # woken (or restarted by the reconciler)
        conn.execute("INSERT INTO t VALUES (2)")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    now = PidFile.read(pgdata)
    assert now is not None and now.pid != pf.pid


def test_an_argon_crash_right_after_the_first_row_re_adopts_the_compute(
        fresh_argon_env: ArgonEnv) -> None:
    env = fresh_argon_env
    created = new_project(env, "wake-crash")
    uri = created["connection_uris"][0]["connection_uri"]
    pgdata = pgdata_of(env, uri)
    suspend(env, created)
    with env.connect(uri) as conn:
        conn.execute("SELECT 1").fetchone()
        env.kill9()   # the start may not have recorded itself yet
    pf = PidFile.read(pgdata)
    assert pf is not None and Path(f"/proc/{pf.pid}").exists()
    env.start()
    assert endpoint(env, created)["current_state"] == "active"
    with env.connect(uri) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert PidFile.read(pgdata).pid == pf.pid   # type: ignore[union-attr]  # re-adopted


def test_a_lying_marker_is_repaired_though_the_client_came_first(
        make_compute_spec: Callable[..., ComputeSpec],
        compute_manager: ComputeManager) -> None:
    spec = replace(make_compute_spec(), admin_password="another-admin-password")
    admin_auth.mark_set(place(spec).pgdata, spec, compute_manager.owner)  # pg_authid: no
    told: list[ComputeAddress] = []
    address = compute_manager.start(spec, ready=told.append)
    assert told == [address]     # the wake's client was let in before the check
    rules = [line.split() for line in (place(spec).pgdata / "pg_hba.conf").read_text()
             .splitlines() if line.strip() and not line.startswith("#")]
    assert rules and all(r[-1] == "scram-sha-256" for r in rules), rules
    with compute_manager.connect(spec) as conn:   # the spec's password works now
        assert conn.execute("SELECT current_user").fetchone() == ("cloud_admin",)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host=address.host, port=address.port, user="cloud_admin",
                        dbname="postgres", password="", passfile="/nonexistent/.pgpass")


def test_a_password_upgrade_does_not_let_the_client_in_early(
        make_compute_spec: Callable[..., ComputeSpec],
        compute_manager: ComputeManager) -> None:
    """No marker: the start runs with the bootstrap pg_hba.conf (cloud_admin trusted on
    the socket) until the password is set; nobody is told the address before."""
    spec = make_compute_spec()
    (place(spec).pgdata / admin_auth.MARKER).unlink()
    told: list[ComputeAddress] = []
    compute_manager.start(spec, ready=told.append)
    assert told == []
    assert admin_auth.is_set(place(spec).pgdata, spec)


def with_login(uri: str, role: str, password: str) -> str:
    """``uri`` (postgresql://user:password@host/...) as another role."""
    scheme, rest = uri.split("://", 1)
    return f"{scheme}://{role}:{password}@{rest.split('@', 1)[1]}"


@pytest.mark.skipif(no_current_pgbouncer() is not None, reason=str(no_current_pgbouncer()))
def test_pooled_wakes_let_in_every_role_and_no_removed_one(argon_env: ArgonEnv) -> None:
    """PgBouncer checks the roles the proxy knows by itself (its auth_file): a role made
    through the API, one made with SQL, a reset password and a deleted role must all be
    seen, while PgBouncer runs and at the next pooled wake."""
    project = create_pooled_project(argon_env, "wake-roles")
    base = f"/projects/{project.id}/branches/" + str(argon_env.api(
        "GET", f"/projects/{project.id}/endpoints/{project.endpoint}").json()[
        "endpoint"]["branch_id"]) + "/roles"
    with psycopg.connect(project.pooled) as conn:   # PgBouncer runs from here on
        conn.execute("SELECT 1")
    r = argon_env.api("POST", base, json={"role": {"name": "api_role"}})
    assert r.status_code == 201, r.text
    logins = {"api_role": r.json()["role"]["password"]}
    with psycopg.connect(project.direct, autocommit=True) as conn:
        conn.execute("CREATE ROLE sql_role LOGIN PASSWORD 'sql-role-password-1'")
    logins["sql_role"] = "sql-role-password-1"
    r = argon_env.api("POST", f"{base}/{project.role}/reset_password")
    assert r.status_code == 200, r.text
    logins[project.role] = r.json()["role"]["password"]
    r = argon_env.api("POST", base, json={"role": {"name": "gone_role"}})
    assert r.status_code == 201, r.text
    gone = r.json()["role"]["password"]
    wait_operations(argon_env.api, project.id, r.json()["operations"])
    assert argon_env.api("DELETE", f"{base}/gone_role").status_code == 200
    for woken in (False, True):
        if woken:
            r = argon_env.api("POST", f"/projects/{project.id}/endpoints/"
                              f"{project.endpoint}/suspend")
            assert r.status_code == 200, r.text
        for role, password in logins.items():
            with psycopg.connect(with_login(project.pooled, role, password),
                                 connect_timeout=30) as conn:
                assert conn.execute("SELECT current_user").fetchone() == (role,)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(with_login(project.pooled, "gone_role", gone), connect_timeout=30)
