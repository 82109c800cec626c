"""The fast paths of issue 15 keep what the slow paths guaranteed.

- a project is a clone of a per-version initdb'd template, yet has its own system
  identifier, its own cloud_admin password and its own owner role; points in its history
  from before its first start (the template's WAL) still restore;
- computes flush a crashed or cloned data directory with syncfs, and a branch killed
  with -9 right after its first start comes back with the parent's rows and its own;
- a pooled wake starts PgBouncer beside Postgres, and the pooled session is served.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from argon.compute.sockets import socket_dir_for
from argon.control.admin_password import AdminPasswords
from argon.storage.wal import read_control_file
from tests.fixtures.argon_env import ArgonEnv
from tests.fixtures.faults import timeline_of
from tests.integration.core.helpers import connect, create_branch, new_project, uri_for


def compute_dsn(env: ArgonEnv, endpoint_id: str, password: str) -> str:
    sock = socket_dir_for(env.home, endpoint_id)
    (path,) = sock.glob(".s.PGSQL.*[0-9]")
    port = path.name.rsplit(".", 1)[1]
    return (f"host={sock} port={port} dbname=postgres user=cloud_admin "
            f"password={password} passfile=/nonexistent/.pgpass connect_timeout=10")


def admin_password(env: ArgonEnv, project_id: str) -> str:
    return AdminPasswords(env.home / "secrets").for_project(project_id)


def system_identifier(env: ArgonEnv, project_id: str, endpoint_id: str) -> int:
    with psycopg.connect(compute_dsn(env, endpoint_id, admin_password(env, project_id))) as c:
        row = c.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
    assert row is not None
    return int(row[0])


def postmaster_pid(uri: str) -> int:
    with psycopg.connect(uri, connect_timeout=60) as conn:
        ckpt = conn.execute("SELECT pid FROM pg_stat_activity "
                            "WHERE backend_type = 'checkpointer'").fetchone()
    assert ckpt is not None
    return int(Path(f"/proc/{ckpt[0]}/stat").read_text().split(")")[1].split()[1])


@pytest.fixture(scope="module")
def two_projects(argon_env: ArgonEnv) -> tuple[dict[str, Any], dict[str, Any]]:
    return new_project(argon_env, "fast-a"), new_project(argon_env, "fast-b")


def test_projects_are_cloned_from_one_template_with_their_own_identity(
        argon_env: ArgonEnv, two_projects: tuple[dict[str, Any], dict[str, Any]]) -> None:
    major = two_projects[0]["project"]["pg_version"]
    templates = sorted((argon_env.home / "templates").glob(f"pg{major}.*"))
    assert len(templates) == 1, templates    # one per Postgres build, reused
    template_id = read_control_file(templates[0]).system_identifier
    ids = []
    for created in two_projects:
        pid, ep = created["project"]["id"], created["endpoints"][0]["id"]
        with psycopg.connect(created["connection_uris"][0]["connection_uri"]) as conn:
            assert conn.execute("SELECT current_user, current_database()").fetchone() == (
                "neondb_owner", "neondb")
        ids.append(system_identifier(argon_env, pid, ep))
    assert len({template_id, *ids}) == 3


def _spares(env: ArgonEnv, template: Path) -> list[Path]:
    """The ready spare clones of ``template``, once one is made (within 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        found = sorted((env.home / "templates" / ".spares").glob(f"{template.name}-*"))
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_project_takes_a_clone_made_ahead_and_its_snapshot_shares_the_template(
        argon_env: ArgonEnv, two_projects: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """With byte copies (the test home's driver) a spare clone of the template is made
    in the background: the next project's data directory is that clone, renamed, and
    its first snapshot links the template's files it did not change (its own identity
    is in its own pg_control); then the next spare is made."""
    major = two_projects[0]["project"]["pg_version"]
    (template,) = (argon_env.home / "templates").glob(f"pg{major}.*")
    (spare,) = _spares(argon_env, template)
    spare_inode = (spare / "PG_VERSION").stat().st_ino

    created = new_project(argon_env, "fast-spare")
    tdir = argon_env.home / "timelines" / timeline_of(argon_env.home, created["branch"]["id"])
    assert (tdir / "pgdata" / "PG_VERSION").stat().st_ino == spare_inode
    assert not spare.exists()
    (snapshot,) = [p / "pgdata" for p in (tdir / "snapshots").iterdir()
                   if not p.name.startswith(".")]
    for rel in ("PG_VERSION", "global/1262", "base/1/1259"):
        assert (snapshot / rel).stat().st_ino == (template / rel).stat().st_ino, rel
    assert (snapshot / "global/pg_control").stat().st_ino != \
        (template / "global/pg_control").stat().st_ino
    pid, ep = created["project"]["id"], created["endpoints"][0]["id"]
    assert read_control_file(snapshot).system_identifier == \
        system_identifier(argon_env, pid, ep) != read_control_file(template).system_identifier
    with psycopg.connect(created["connection_uris"][0]["connection_uri"]) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("neondb",)
    assert [p.name for p in _spares(argon_env, template)] not in ([], [spare.name])


def test_cloud_admin_and_owner_passwords_are_per_project(
        argon_env: ArgonEnv, two_projects: tuple[dict[str, Any], dict[str, Any]]) -> None:
    a, b = two_projects
    a_ep = a["endpoints"][0]["id"]
    with psycopg.connect(compute_dsn(argon_env, a_ep, admin_password(
            argon_env, a["project"]["id"]))) as conn:
        assert conn.execute("SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
                            "WHERE rolname = 'cloud_admin'").fetchone() == (True,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(compute_dsn(argon_env, a_ep, admin_password(argon_env,
                                                                    b["project"]["id"])))
    # a's owner password does not open b, though both owners are called neondb_owner
    a_pw = psycopg.conninfo.conninfo_to_dict(a["connection_uris"][0]["connection_uri"])
    b_uri = psycopg.conninfo.conninfo_to_dict(b["connection_uris"][0]["connection_uri"])
    assert a_pw["password"] != b_uri["password"]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**{**b_uri, "password": a_pw["password"]}, connect_timeout=30)


def test_a_named_database_is_the_templates_renamed_and_owned_by_the_owner(
        argon_env: ArgonEnv) -> None:
    created = new_project(argon_env, "fast-named", branch={"database_name": "appdb",
                                                          "role_name": "app"})
    with psycopg.connect(created["connection_uris"][0]["connection_uri"],
                         autocommit=True) as conn:
        assert conn.execute("SELECT current_user, current_database(), "
                            "pg_get_userbyid(datdba) FROM pg_database "
                            "WHERE datname = current_database()").fetchone() == (
            "app", "appdb", "app")
        conn.execute("CREATE TABLE mine (n int)")   # public belongs to the database owner
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert names == {"appdb", "postgres", "template0", "template1"}
    r = argon_env.api("POST", "/projects", json={"project": {
        "name": "fast-dup", "branch": {"database_name": "postgres"}}})
    assert r.status_code == 409, r.text
    assert "already exists" in r.json()["message"]


def test_history_from_the_template_point_restores(
        argon_env: ArgonEnv, two_projects: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """A branch at an LSN replays from the project's first snapshot: the template's WAL
    segment, re-identified, then the project's own WAL."""
    created = two_projects[0]
    pid, main = created["project"]["id"], created["branch"]["id"]
    with connect(argon_env, pid, main) as conn:
        conn.execute("CREATE TABLE early (n int)")
        conn.execute("INSERT INTO early SELECT generate_series(1, 50)")
        lsn = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
        conn.execute("INSERT INTO early SELECT generate_series(51, 60)")
    r = argon_env.api("POST", f"/projects/{pid}/branches", json={
        "branch": {"name": "at-early", "parent_id": main, "parent_lsn": lsn},
        "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    with connect(argon_env, pid, r.json()["branch"]["id"]) as conn:
        assert conn.execute("SELECT count(*) FROM early").fetchone() == (50,)


def test_branch_killed_after_its_first_start_keeps_the_rows(argon_env: ArgonEnv) -> None:
    created = new_project(argon_env, "fast-kill")
    pid, main = created["project"]["id"], created["branch"]["id"]
    with connect(argon_env, pid, main) as conn:
        conn.execute("CREATE TABLE t (n int)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 1000)")
    child = create_branch(argon_env, pid, "killed")["branch"]
    uri = uri_for(argon_env, pid, child["id"])
    with psycopg.connect(uri, autocommit=True, connect_timeout=60) as conn:
        assert conn.execute("SHOW recovery_init_sync_method").fetchone() == ("syncfs",)
        conn.execute("INSERT INTO t VALUES (-1)")   # committed: must survive kill -9
    os.kill(postmaster_pid(uri), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:   # the reconciler or the next connection restarts it (crash recovery)
        try:
            with psycopg.connect(uri, connect_timeout=60) as conn:
                assert conn.execute("SELECT count(*), min(n) FROM t").fetchone() == (1001, -1)
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_pooled_wake_starts_pgbouncer_beside_postgres(argon_env: ArgonEnv) -> None:
    created = new_project(argon_env, "fast-wake")
    pid, main, ep = (created["project"]["id"], created["branch"]["id"],
                     created["endpoints"][0]["id"])
    r = argon_env.api("POST", f"/projects/{pid}/endpoints/{ep}/suspend")
    assert r.status_code == 200, r.text
    log_start = argon_env.log_path.stat().st_size
    pooled = uri_for(argon_env, pid, main, pooled=True)
    with psycopg.connect(pooled, autocommit=True, connect_timeout=60) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("neondb_owner",)
    with psycopg.connect(pooled, autocommit=True, connect_timeout=60) as conn:
        assert conn.execute("SELECT 2").fetchone() == (2,)
    with argon_env.log_path.open("rb") as f:
        f.seek(log_start)
        lines = f.read().decode(errors="replace").splitlines()
    pooler_up = next(i for i, line in enumerate(lines) if f"pooler {ep}: started" in line)
    compute_up = next(i for i, line in enumerate(lines)
                      if f"started compute {ep} on port" in line)
    # the wake waited for PgBouncer before it recorded the compute as started: the two
    # started side by side (before, PgBouncer was started only after this line)
    assert pooler_up < compute_up, lines
