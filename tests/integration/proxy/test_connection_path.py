"""The connection path of issue 8: no lock and no wake where none is needed.

- a new session on a running parent is served while a branch of it waits (time travel
  with an unwritable WAL archive holds the parent's endpoint for up to 60 s);
- an unknown role never starts a suspended compute;
- roles made with SQL log in after their compute suspended and after an Argon restart
  (their verifiers are synced out of Postgres, not looked up by waking it);
- a flood of compute starts is refused with a fixed Postgres-style error, and a start
  failure never shows the client Argon's log;
- the reconciler's idle decision is checked again under the lock: a client that
  connected in between is not cut off.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

from argon.control.proxy_backend import ControlProxyBackend
from argon.control.requests import ProjectCreate
from argon.control.services import Services, build_services
from argon.proxy import TlsConfig
from argon.settings import Settings
from tests.fixtures.argon_env import ArgonEnv
from tests.fixtures.faults import postmaster_pid, timeline_of
from tests.fixtures.proxy import DOMAIN, ProxyEnv
from tests.integration.core.helpers import new_project

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changes files owned by the "
                                "Postgres account (archive, data directory): needs root")


def _as_user(uri: str, user: str, password: str) -> str:
    parts = urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{quote(user)}:{quote(password)}@{host}"))


def _state(env: ArgonEnv, project_id: str, endpoint_id: str) -> str:
    r = env.api("GET", f"/projects/{project_id}/endpoints/{endpoint_id}")
    assert r.status_code == 200, r.text
    return str(r.json()["endpoint"]["current_state"])


def _suspend(env: ArgonEnv, project_id: str, endpoint_id: str) -> None:
    r = env.api("POST", f"/projects/{project_id}/endpoints/{endpoint_id}/suspend")
    assert r.status_code == 200, r.text
    assert _state(env, project_id, endpoint_id) == "idle"


def _project(env: ArgonEnv, name: str) -> dict[str, Any]:
    created = new_project(env, name)
    return {"id": created["project"]["id"], "branch": created["branch"]["id"],
            "endpoint": created["endpoints"][0]["id"],
            "uri": created["connection_uris"][0]["connection_uri"]}


def _wait_for_branch_row(env: ArgonEnv, project_id: str, name: str,
                         done: threading.Event) -> None:
    """Until the branch call has written its (still initialising) branch row."""
    deadline = time.monotonic() + 30
    while not any(b["name"] == name for b in env.api(
            "GET", f"/projects/{project_id}/branches").json()["branches"]):
        assert time.monotonic() < deadline and not done.is_set(), "the branch call ended"
        time.sleep(0.01)


# -- no lock on the connection path of a running compute ------------------------------

def test_new_sessions_on_a_running_parent_are_served_while_a_time_travel_branch_waits(
        fresh_argon_env: ArgonEnv) -> None:
    env = fresh_argon_env
    p = _project(env, "tt-parent")
    with env.connect(p["uri"]) as conn:
        conn.execute("CREATE TABLE t AS SELECT 1 AS x")
    time.sleep(1.1)
    moment = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    time.sleep(1.1)
    wal = env.home / "timelines" / timeline_of(env.home, p["branch"]) / "wal"
    mode = wal.stat().st_mode & 0o7777
    os.chmod(wal, 0o500)   # the archiver (the Postgres account) cannot store WAL any more
    answer: dict[str, Any] = {}
    done = threading.Event()

    def branch_at_past() -> None:
        answer["r"] = env.api("POST", f"/projects/{p['id']}/branches", json={
            "branch": {"name": "past", "parent_timestamp": moment}})
        done.set()

    brancher = threading.Thread(target=branch_at_past)
    brancher.start()
    try:
        _wait_for_branch_row(env, p["id"], "past", done)
        time.sleep(0.5)   # now sealing the parent's WAL: it holds the parent's endpoint
        for i in range(5):
            assert brancher.is_alive(), "the branch must still be waiting for the archive"
            with psycopg.connect(p["uri"], autocommit=True, connect_timeout=20) as conn:
                assert conn.execute("SELECT count(*) + %s FROM t", (i,)).fetchone() == (1 + i,)
        assert brancher.is_alive(), "the sessions above ran while the branch call waited"
    finally:
        os.chmod(wal, mode)
        brancher.join(120)
    assert answer["r"].status_code in (201, 503), answer["r"].text


def test_new_sessions_on_a_running_parent_are_served_while_a_big_clone_of_it_runs(
        fresh_argon_env: ArgonEnv) -> None:
    env = fresh_argon_env
    p = _project(env, "big-parent")
    with env.connect(p["uri"]) as conn:   # ~300 MiB: a full copy takes a while here
        conn.execute("CREATE TABLE big AS SELECT i, repeat(md5(i::text), 30) AS pad "
                     "FROM generate_series(1, 300000) i")
        conn.execute("CHECKPOINT")
    done = threading.Event()
    answer: dict[str, Any] = {}

    def branch_at_head() -> None:
        answer["r"] = env.api("POST", f"/projects/{p['id']}/branches",
                              json={"branch": {"name": "copy"}})
        done.set()

    brancher = threading.Thread(target=branch_at_head)
    brancher.start()
    served_during_clone = 0
    try:
        _wait_for_branch_row(env, p["id"], "copy", done)
        # Sessions opened one after another while the clone holds the parent's endpoint:
        # waiting for its lock would serve at most the first (begun before it was taken).
        while not done.is_set():
            with psycopg.connect(p["uri"], autocommit=True, connect_timeout=20) as conn:
                conn.execute("SELECT 1")
            if not done.is_set():
                served_during_clone += 1
    finally:
        brancher.join(120)
    assert answer["r"].status_code == 201, answer["r"].text
    assert served_during_clone >= 2, served_during_clone


# -- never a wake before authentication ----------------------------------------------

def test_an_unknown_role_does_not_start_a_suspended_compute(argon_env: ArgonEnv) -> None:
    p = _project(argon_env, "no-wake")
    _suspend(argon_env, p["id"], p["endpoint"])
    timeline = timeline_of(argon_env.home, p["branch"])
    for user in ("intruder", "admin", "postgres"):
        with pytest.raises(psycopg.OperationalError,
                           match=f'password authentication failed for user "{user}"'):
            psycopg.connect(_as_user(p["uri"], user, "guess"), connect_timeout=30).close()
    assert _state(argon_env, p["id"], p["endpoint"]) == "idle"
    assert postmaster_pid(argon_env.home, timeline) is None


def test_roles_made_with_sql_log_in_after_a_suspend_and_after_an_argon_restart(
        fresh_argon_env: ArgonEnv) -> None:
    env = fresh_argon_env
    p = _project(env, "sql-roles")
    with env.connect(p["uri"]) as conn:
        conn.execute("CREATE ROLE app_sql LOGIN PASSWORD 'Sql-pw-123'")
        conn.execute("CREATE ROLE moved_sql LOGIN PASSWORD 'old-pw-1'")
    app = _as_user(p["uri"], "app_sql", "Sql-pw-123")
    with env.connect(app) as conn:   # not synced yet: the running compute answers
        assert conn.execute("SELECT current_user").fetchone() == ("app_sql",)
    with env.connect(p["uri"]) as conn:
        conn.execute("ALTER ROLE moved_sql PASSWORD 'new-pw-2'")
    _suspend(env, p["id"], p["endpoint"])     # the suspend copies the verifiers out
    with env.connect(app) as conn:            # an authenticated client wakes it
        assert conn.execute("SELECT current_user").fetchone() == ("app_sql",)
    with env.connect(_as_user(p["uri"], "moved_sql", "new-pw-2")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("moved_sql",)
    _suspend(env, p["id"], p["endpoint"])
    env.stop()
    env.start()
    assert _state(env, p["id"], p["endpoint"]) == "idle"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(_as_user(p["uri"], "moved_sql", "old-pw-1"), connect_timeout=30)
    assert _state(env, p["id"], p["endpoint"]) == "idle"
    with env.connect(app) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("app_sql",)
    roles = env.api("GET", f"/projects/{p['id']}/branches/{p['branch']}/roles").json()
    assert r"neondb_owner" in {r["name"] for r in roles["roles"]}


# -- start failures and the wake rate limit -------------------------------------------

def test_a_flood_of_failing_starts_gets_fixed_texts_then_is_rate_limited(
        fresh_argon_env: ArgonEnv) -> None:
    env = fresh_argon_env
    p = _project(env, "flood")
    _suspend(env, p["id"], p["endpoint"])
    pgdata = env.home / "timelines" / timeline_of(env.home, p["branch"]) / "pgdata"
    (pgdata / "PG_VERSION").rename(pgdata / "PG_VERSION.hidden")   # every start fails
    messages = []
    for _ in range(30):
        with pytest.raises(psycopg.OperationalError) as info:
            psycopg.connect(p["uri"], connect_timeout=30).close()
        messages.append(str(info.value))
    start_failed = f"could not start the compute for endpoint {p['endpoint']}; try again, " \
        "or see Argon's log"
    refused = "too many compute starts requested; retry in a few seconds"
    failed = [m for m in messages if start_failed in m]
    limited = [m for m in messages if refused in m]
    assert failed and limited, messages
    assert len(failed) + len(limited) == len(messages), messages
    assert len(failed) < len(messages) / 2     # most of the flood never reached a start
    for m in messages:
        assert str(env.home) not in m and "Log (" not in m, m
    # the detail is kept where the operator looks: Argon's log and the failed operation
    assert f"compute {p['endpoint']} failed to start" in env.log_path.read_text()
    ops = env.api("GET", f"/projects/{p['id']}/operations").json()["operations"]
    assert any(o["action"] == "start_compute" and o["status"] == "failed" for o in ops)
    # a start records the endpoint "active" before the compute answers: a failed one
    # puts it back
    endpoint = env.api("GET", f"/projects/{p['id']}/endpoints/{p['endpoint']}").json()
    assert endpoint["endpoint"]["current_state"] == "idle", endpoint


# -- the reconciler's idle decision is checked again under the lock --------------------

@pytest.fixture
def in_process(argon_tmp: Path, proxy_tls: TlsConfig) -> Iterator[tuple[Services, ProxyEnv]]:
    services = build_services(Settings(home=argon_tmp / "home"))
    proxy = ProxyEnv(ControlProxyBackend(services), proxy_tls)
    try:
        yield services, proxy
    finally:
        proxy.close()
        services.stop_all_computes()


def test_a_client_connecting_while_the_reconciler_decides_to_suspend_is_not_cut_off(
        in_process: tuple[Services, ProxyEnv], monkeypatch: pytest.MonkeyPatch) -> None:
    services, proxy = in_process
    created = services.projects.create(ProjectCreate(name="race"))
    ep = created.endpoints[0].id
    uri = urlsplit(created.connection_uris[0].connection_uri)
    dsn = (f"host={ep}.{DOMAIN} hostaddr=127.0.0.1 port={proxy.port} user={uri.username} "
           f"password={uri.password} dbname={uri.path.lstrip('/')} sslmode=require")
    time.sleep(1.5)   # idle for longer than the 1 s limit below
    decided, proceed = threading.Event(), threading.Event()
    suspend = services.runtime.suspend

    def suspend_after_a_pause(*args: Any, **kw: Any) -> bool:
        decided.set()      # the reconciler has decided, outside the lock ...
        proceed.wait(30)   # ... and a client connects before it suspends
        return suspend(*args, **kw)

    monkeypatch.setattr(services.runtime, "suspend", suspend_after_a_pause)
    reconciler = threading.Thread(target=services.reconciler._check, args=(ep, 1))
    reconciler.start()
    assert decided.wait(30), "the compute was idle: the reconciler must decide to suspend"
    conn = psycopg.connect(dsn, autocommit=True, connect_timeout=30)
    try:
        assert conn.execute("SELECT 'connected'").fetchone() == ("connected",)
        proceed.set()
        reconciler.join(60)
        assert conn.execute("SELECT 'still here'").fetchone() == ("still here",)
        assert services.runtime.running(ep) is not None
    finally:
        proceed.set()
        conn.close()
    # once really idle again, the same check does suspend it
    time.sleep(1.5)
    services.reconciler._check(ep, 1)
    assert services.runtime.running(ep) is None


def test_a_disabled_endpoint_is_refused_with_its_own_text(argon_env: ArgonEnv) -> None:
    p = _project(argon_env, "disabled")
    r = argon_env.api("PATCH", f"/projects/{p['id']}/endpoints/{p['endpoint']}",
                      json={"endpoint": {"disabled": True}})
    assert r.status_code == 200, r.text
    with pytest.raises(psycopg.OperationalError,
                       match=f"endpoint {p['endpoint']} is disabled; enable it to connect"):
        psycopg.connect(p["uri"], connect_timeout=30).close()
    assert _state(argon_env, p["id"], p["endpoint"]) == "idle"
