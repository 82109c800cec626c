"""Direct-door backends kept for the next client of the role (``argon.proxy.backend_reset``),
on a real Argon: a session that ended cleanly leaves its Postgres backend, after
``DISCARD ALL``, to the next client with the same role, database and startup parameters;
every client still starts as on a fresh login (no setting, temporary table, prepared
statement, lock, LISTEN, cursor or role switch of the last one), sees login settings
changed since with ALTER ROLE / ALTER DATABASE, and a kept backend neither takes an old
client's cancel, nor keeps its compute awake, nor holds a slot a new client needs.
``--no-keep-direct-backends`` turns it off."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.fixtures.argon_env import ArgonEnv, metric_value, running_env
from tests.integration.proxy.pooled_project import PooledProject, create_pooled_project

APP = "reset-test"


@pytest.fixture(scope="module")
def env() -> Iterator[ArgonEnv]:
    with running_env("backend-reset") as env:
        yield env


@pytest.fixture(scope="module")
def project(env: ArgonEnv) -> PooledProject:
    return create_pooled_project(env, "reset")


def _metric(env: ArgonEnv, name: str) -> float:
    return metric_value(env, f"argon_proxy_{name}_total")


def _connect(project: PooledProject, **kw: object) -> psycopg.Connection:
    return psycopg.connect(project.direct, application_name=APP, autocommit=True, **kw)


def _pid(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def _warm(project: PooledProject) -> set[int]:
    """Sessions until one starts on a kept backend; the pids seen so far."""
    seen: set[int] = set()
    for _ in range(6):
        with _connect(project) as conn:
            pid = _pid(conn)
        if pid in seen:
            return seen
        seen.add(pid)
        time.sleep(0.05)
    raise AssertionError(f"no session started on a kept backend (pids {seen})")


def test_a_clean_session_leaves_its_backend_to_the_next_client(
        env: ArgonEnv, project: PooledProject) -> None:
    _warm(project)
    before = _metric(env, "reset_backends")
    pids = []
    for _ in range(5):
        with _connect(project) as conn:
            assert conn.execute("SELECT current_user, session_user, "
                                "current_setting('application_name')").fetchone() == (
                project.role, project.role, APP)
            pids.append(_pid(conn))
    assert len(set(pids)) < len(pids)
    assert _metric(env, "reset_backends") >= before + 4


def test_no_session_state_reaches_the_next_client(env: ArgonEnv,
                                                  project: PooledProject) -> None:
    seen = _warm(project)
    reused = 0
    for i in range(4):
        with _connect(project, prepare_threshold=0) as conn:
            reused += _pid(conn) in seen
            seen.add(_pid(conn))
            # what the last session left would show here
            assert conn.execute("SHOW TimeZone").fetchone() != ("Pacific/Chatham",)
            assert conn.execute("SHOW work_mem").fetchone() != ("7MB",)
            assert conn.execute("SELECT current_user").fetchone() == (project.role,)
            # psycopg prepares every query here as _pg3_0, _pg3_1, ...: the last session's
            # would make the first of them fail "already exists"
            assert conn.execute("SELECT count(*) FROM pg_prepared_statements "
                                "WHERE name = 'left_plan'").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM pg_cursors WHERE name = 'left_cursor'"
                                ).fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM pg_listening_channels()"
                                ).fetchone() == (0,)
            assert conn.execute("SELECT to_regclass('pg_temp.left_behind')").fetchone() == (
                None,)
            assert conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                "AND pid = pg_backend_pid()").fetchone() == (0,)
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
                conn.execute("SELECT lastval()")
            # and leave all of it behind
            conn.execute("SET TimeZone = 'Pacific/Chatham'")
            conn.execute("SET work_mem = '7MB'")
            conn.execute("CREATE TEMP TABLE left_behind (a int)")
            conn.execute("CREATE TEMP SEQUENCE left_seq")
            conn.execute("SELECT nextval('left_seq')")
            conn.execute("PREPARE left_plan AS SELECT 1")
            conn.execute("SELECT %s::int", [i])            # a protocol-level named statement
            conn.execute("SELECT pg_advisory_lock(4242)")
            conn.execute("LISTEN left_channel")
            with conn.transaction():
                conn.execute("DECLARE left_cursor CURSOR WITH HOLD FOR SELECT 1")
            conn.execute("SET ROLE neon_superuser")
    assert reused >= 3    # the checks above ran on kept backends
    with _connect(project) as other:   # the advisory lock went with the reset
        assert other.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (True,)


def test_login_settings_changed_since_reach_the_next_session(
        env: ArgonEnv, project: PooledProject) -> None:
    _warm(project)
    refused = _metric(env, "stale_backends")
    try:
        with _connect(project) as conn:
            conn.execute(f'ALTER ROLE "{project.role}" SET statement_timeout = \'7s\'')
        with _connect(project) as conn:
            assert conn.execute("SHOW statement_timeout").fetchone() == ("7s",)
            conn.execute(f'ALTER DATABASE "{project.database}" SET lock_timeout = \'3s\'')
        with _connect(project) as conn:
            assert conn.execute("SHOW lock_timeout").fetchone() == ("3s",)
    finally:
        with _connect(project) as conn:
            conn.execute(f'ALTER ROLE "{project.role}" RESET statement_timeout')
            conn.execute(f'ALTER DATABASE "{project.database}" RESET lock_timeout')
    with _connect(project) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
        assert conn.execute("SHOW lock_timeout").fetchone() == ("0",)
    assert _metric(env, "stale_backends") >= refused + 2


def test_a_session_left_inside_a_transaction_is_not_kept(project: PooledProject) -> None:
    _warm(project)
    conn = psycopg.connect(project.direct, application_name=APP)   # not autocommit
    conn.execute("CREATE TEMP TABLE in_tx (a int)")
    left = _pid(conn)
    conn.close()   # a Terminate inside the transaction
    for _ in range(3):
        with _connect(project) as conn:
            assert _pid(conn) != left
            assert conn.execute("SELECT to_regclass('pg_temp.in_tx')").fetchone() == (None,)


def test_an_old_clients_cancel_never_reaches_the_next_session(
        project: PooledProject) -> None:
    _warm(project)
    with _connect(project) as old:
        old_pid = _pid(old)
        old_cancel = old.pgconn.get_cancel()
    with _connect(project) as conn:
        assert _pid(conn) == old_pid          # the same backend, kept
        threading.Timer(0.3, old_cancel.cancel).start()
        assert conn.execute("SELECT 'done' FROM pg_sleep(1)").fetchone() == ("done",)


def test_kept_backends_do_not_keep_the_compute_awake(env: ArgonEnv,
                                                     project: PooledProject) -> None:
    r = env.api("PATCH", f"/projects/{project.id}/endpoints/{project.endpoint}",
                json={"endpoint": {"suspend_timeout_seconds": 1}})
    assert r.status_code == 200, r.text
    try:
        _warm(project)
        with psycopg.connect(project.direct, application_name="reset-probe") as probe:
            kept = probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND state = 'idle'", [APP]).fetchone()
        assert kept is not None and kept[0] >= 1
        # kept backends live 10 s (SPARE_TTL); the compute suspends well before
        deadline = time.monotonic() + 8
        state = None
        while time.monotonic() < deadline:
            state = env.api("GET", f"/projects/{project.id}/endpoints/{project.endpoint}"
                            ).json()["endpoint"]["current_state"]
            if state == "idle":
                break
            time.sleep(0.25)
        assert state == "idle"
        with _connect(project) as conn:     # and wakes as usual
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        env.api("PATCH", f"/projects/{project.id}/endpoints/{project.endpoint}",
                json={"endpoint": {"suspend_timeout_seconds": 300}})


def test_kept_backends_never_lock_a_client_out_of_a_full_compute(env: ArgonEnv) -> None:
    full = create_pooled_project(env, "reset-full")
    for i in range(20):   # each its own key: up to 16 are kept for the compute
        with psycopg.connect(full.direct, application_name=f"{APP}-{i}") as conn:
            conn.execute("SELECT 1")
    held: list[psycopg.Connection] = []
    try:
        kept_query = ("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle' "
                      "AND starts_with(query, '/* argon: kept login */')")
        # autocommit: pg_stat_activity is read once per transaction
        held.append(psycopg.connect(full.direct, application_name="held-0", autocommit=True))
        kept = held[0].execute(kept_query).fetchone()
        assert kept is not None and kept[0] >= 10
        # take every slot: a refusal may come only once no kept backend holds one
        refused = None
        for i in range(1, 200):
            try:
                held.append(psycopg.connect(full.direct, application_name=f"held-{i}",
                                            connect_timeout=10))
            except psycopg.OperationalError as e:
                refused = e
                break
        # Postgres' 53300: "too many clients", or the slots left are the superusers'
        assert refused is not None and ("too many clients" in str(refused)
                                        or "slots are reserved" in str(refused)), refused
        assert held[0].execute(kept_query).fetchone() == (0,)
    finally:
        for conn in held:
            conn.close()
        env.api("DELETE", f"/projects/{full.id}")


def test_without_kept_backends_every_direct_connection_gets_its_own() -> None:
    with running_env("no-kept-backends", ["--no-keep-direct-backends"]) as other:
        fresh = create_pooled_project(other, "no-kept")
        pids = set()
        for _ in range(4):
            with _connect(fresh) as conn:
                pids.add(_pid(conn))
            time.sleep(0.05)
        assert len(pids) == 4
        assert _metric(other, "reset_backends") == 0
