"""``argon local`` as Neon Local's users drive it: the fixed ``neon``/``npg`` string on one
port, an ephemeral branch per run, ``BRANCH_ID``, and one database branch per git branch
(a real ``git init`` repository), against a real Argon."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest

from tests.fixtures.argon_env import ArgonEnv, wait_operations
from tests.fixtures.common import free_port
from tests.fixtures.local_door import LocalDoor, branches

pytestmark = pytest.mark.timeout(600)

EPHEMERAL = "argon-local-ephemeral-"


@pytest.fixture(scope="module")
def project(argon_env: ArgonEnv) -> Iterator[str]:
    r = argon_env.api("POST", "/projects",
                      json={"project": {"name": f"local-{uuid.uuid4().hex[:8]}"}})
    assert r.status_code == 201, r.text
    pid = r.json()["project"]["id"]
    wait_operations(argon_env.api, pid, r.json()["operations"])
    yield pid
    argon_env.api("DELETE", f"/projects/{pid}")


def door(env: ArgonEnv, tmp: Path, project: str, **variables: str) -> LocalDoor:
    return LocalDoor(env, tmp, {"NEON_PROJECT_ID": project, **variables})


def connect(uri: str) -> psycopg.Connection:
    return psycopg.connect(uri, autocommit=True, connect_timeout=60)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   cwd=repo, check=True, capture_output=True)


def test_ephemeral_branch_two_databases_tls_and_plain(argon_env: ArgonEnv, project: str,
                                                      tmp_path: Path) -> None:
    before = branches(argon_env, project)
    d = door(argon_env, tmp_path, project)
    d.start()
    try:
        made = {n: i for n, i in branches(argon_env, project).items() if n not in before}
        assert len(made) == 1 and next(iter(made)).startswith(EPHEMERAL), made
        branch_id = next(iter(made.values()))
        r = argon_env.api("POST", f"/projects/{project}/branches/{branch_id}/databases",
                          json={"database": {"name": "appdb", "owner_name": "neondb_owner"}})
        assert r.status_code == 201, r.text
        wait_operations(argon_env.api, project, r.json()["operations"])
        with connect(d.uri("neondb", sslmode="require")) as c:
            assert c.pgconn.ssl_in_use
            assert c.execute("SELECT current_database(), current_user").fetchone() == (
                "neondb", "neondb_owner")
            c.execute("CREATE TABLE only_here (x int)")
        with connect(d.uri("appdb", sslmode="disable")) as c:
            assert not c.pgconn.ssl_in_use
            assert c.execute("SELECT current_database()").fetchone() == ("appdb",)
        # the parent (the default branch) does not see the ephemeral branch's table
        parent = argon_env.api("GET", f"/projects/{project}/connection_uri", params={
            "branch_id": before["main"], "database_name": "neondb",
            "role_name": "neondb_owner"}).json()["uri"]
        with argon_env.connect(parent) as c:
            assert c.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
    finally:
        assert d.stop(signal.SIGTERM) == 0, d.log.read_text()
    assert branch_id not in branches(argon_env, project).values()
    assert not (tmp_path / ".neon_local" / "ephemeral_branch.json").exists()


def test_wrong_password_and_unknown_database_are_postgres_errors(
        argon_env: ArgonEnv, project: str, tmp_path: Path) -> None:
    with door(argon_env, tmp_path, project) as d:
        async def attempts() -> tuple[BaseException, BaseException, BaseException]:
            async def one(**kw: Any) -> BaseException:
                try:
                    conn = await asyncpg.connect(host="localhost", port=d.port, ssl=False,
                                                 **kw)
                except BaseException as e:  # noqa: BLE001 - the error is the result
                    return e
                await conn.close()
                raise AssertionError(f"connected with {kw}")
            return (await one(user="neon", password="wrong", database="neondb"),
                    await one(user="postgres", password="npg", database="neondb"),
                    await one(user="neon", password="npg", database="nosuch"))
        bad_pw, bad_user, no_db = asyncio.run(attempts())
        assert isinstance(bad_pw, asyncpg.InvalidPasswordError), bad_pw
        assert isinstance(bad_user, asyncpg.InvalidPasswordError), bad_user
        assert isinstance(no_db, asyncpg.InvalidCatalogNameError), no_db
        assert 'database "nosuch" does not exist' in str(no_db)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect(d.uri(password="nope"))
        with connect(d.uri()) as c:            # still serving after the refusals
            assert c.execute("SELECT 1").fetchone() == (1,)


def test_branch_id_connects_to_that_branch_and_deletes_nothing(
        argon_env: ArgonEnv, project: str, tmp_path: Path) -> None:
    r = argon_env.api("POST", f"/projects/{project}/branches",
                      json={"branch": {"name": "dev"}, "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    wait_operations(argon_env.api, project, r.json()["operations"])
    dev = r.json()["branch"]["id"]
    before = branches(argon_env, project)
    with door(argon_env, tmp_path, project, BRANCH_ID=dev) as d, connect(d.uri()) as c:
        c.execute("CREATE TABLE on_dev AS SELECT 7 AS x")
        assert branches(argon_env, project) == before     # nothing made
    assert branches(argon_env, project) == before         # nothing deleted
    uri = argon_env.api("GET", f"/projects/{project}/connection_uri", params={
        "branch_id": dev, "database_name": "neondb", "role_name": "neondb_owner"}).json()["uri"]
    with argon_env.connect(uri) as c:
        assert c.execute("SELECT x FROM on_dev").fetchone() == (7,)


def test_parent_branch_id_is_the_ephemeral_branch_parent(
        argon_env: ArgonEnv, project: str, tmp_path: Path) -> None:
    r = argon_env.api("POST", f"/projects/{project}/branches",
                      json={"branch": {"name": "staging"}, "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    wait_operations(argon_env.api, project, r.json()["operations"])
    staging = r.json()["branch"]["id"]
    uri = r.json()["connection_uris"][0]["connection_uri"]
    with argon_env.connect(uri) as c:
        c.execute("CREATE TABLE staged AS SELECT 'from staging' AS v")
    with door(argon_env, tmp_path, project, PARENT_BRANCH_ID="staging") as d:
        made = [b for b in argon_env.api("GET", f"/projects/{project}/branches").json()[
            "branches"] if b["name"].startswith(EPHEMERAL)]
        assert [b["parent_id"] for b in made] == [staging]
        with connect(d.uri(sslmode="disable")) as c:
            assert c.execute("SELECT v FROM staged").fetchone() == ("from staging",)
    assert not [n for n in branches(argon_env, project) if n.startswith(EPHEMERAL)]


def test_git_branches_map_to_database_branches_and_follow_checkout(
        argon_env: ArgonEnv, project: str, tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the git-branch mode needs a real repository")
    repo = tmp_path / "app"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "init")
    git(repo, "checkout", "-q", "-b", "feature/one")
    d = LocalDoor(argon_env, repo, {"NEON_PROJECT_ID": project, "DELETE_BRANCH": "false"},
                  args=["--git-dir", str(repo)])
    with d:
        with connect(d.uri()) as c:
            c.execute("CREATE TABLE t (who text)")
            c.execute("INSERT INTO t VALUES ('one')")
            held = connect(d.uri())     # a session opened on feature/one
        git(repo, "checkout", "-q", "-b", "feature/two")
        with connect(d.uri()) as c:     # new connections land on the new git branch's one
            assert c.execute("SELECT to_regclass('t')").fetchone() == (None,)
            c.execute("CREATE TABLE t (who text)")
            c.execute("INSERT INTO t VALUES ('two')")
        # the session still open on feature/one was ended by Postgres (57P01), so pools
        # reconnect, to feature/two
        with pytest.raises(psycopg.errors.AdminShutdown):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                held.execute("SELECT 1")
                time.sleep(0.2)
        held.close()
        names = branches(argon_env, project)
        assert {"feature/one", "feature/two"} <= set(names)
    kept = branches(argon_env, project)
    assert {"feature/one", "feature/two"} <= set(kept)     # DELETE_BRANCH=false keeps them
    git(repo, "checkout", "-q", "feature/one")
    with d, connect(d.uri()) as c:                       # a restart reuses them
        assert c.execute("SELECT who FROM t").fetchone() == ("one",)
    assert branches(argon_env, project) == kept
    assert (repo / ".neon_local" / "branches.json").exists()


def test_crash_leaves_one_ephemeral_branch_that_the_next_start_deletes(
        argon_env: ArgonEnv, project: str, tmp_path: Path) -> None:
    before = branches(argon_env, project)
    d = door(argon_env, tmp_path, project)
    d.start()
    left = {n: i for n, i in branches(argon_env, project).items() if n not in before}
    d.stop(signal.SIGKILL)
    assert set(left.values()) <= set(branches(argon_env, project).values())  # left behind
    with door(argon_env, tmp_path, project):
        now = branches(argon_env, project)
        assert not set(left.values()) & set(now.values())
        assert len([n for n in now if n.startswith(EPHEMERAL) and n not in before]) == 1
    assert branches(argon_env, project) == before


def test_argon_unreachable_is_a_clear_error(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "argon.cli.main", "local", "--port",
                          str(free_port()), "--api-url", f"http://127.0.0.1:{free_port()}/api/v2",
                          "--api-key", "k", "--sql-url", "http://127.0.0.1:1/sql",
                          "--project-id", "p"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 1
    assert "cannot reach the Argon API" in res.stderr
