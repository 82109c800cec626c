"""Pooled logins kept for the next client (``argon.proxy.reuse``), on a real Argon with a
real PgBouncer: a session that left nothing behind hands its PgBouncer login to the next
client of the same role, and one that left state (a parameter it set, a named prepared
statement, a query it never read the answer of) does not, so every client starts as on a
fresh login."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.fixtures.argon_env import ArgonEnv, running_env
from tests.integration.proxy.pooled_project import PooledProject, create_pooled_project


@pytest.fixture(scope="module")
def env() -> Iterator[ArgonEnv]:
    with running_env("login-reuse") as env:
        yield env


@pytest.fixture(scope="module")
def project(env: ArgonEnv) -> PooledProject:
    return create_pooled_project(env, "reuse")


def _reused(env: ArgonEnv) -> float:
    text = httpx.get(f"http://127.0.0.1:{env.api_port}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("argon_proxy_reused_logins_total "):
            return float(line.split()[1])
    raise AssertionError("argon_proxy_reused_logins_total not on /metrics")


def test_clean_sessions_hand_their_login_on(env: ArgonEnv, project: PooledProject) -> None:
    before = _reused(env)
    for _ in range(5):
        with psycopg.connect(project.pooled, application_name="reuse-test") as conn:
            assert conn.execute("SELECT current_user, current_setting('application_name')"
                                ).fetchone() == (project.role, "reuse-test")
    assert _reused(env) >= before + 4


def test_a_parameter_set_by_one_client_never_reaches_the_next(
        env: ArgonEnv, project: PooledProject) -> None:
    for _ in range(3):
        with psycopg.connect(project.pooled, application_name="tz-test") as conn:
            assert conn.execute("SHOW TimeZone").fetchone() != ("Pacific/Chatham",)
            assert conn.execute("SHOW DateStyle").fetchone()[0].startswith("ISO")
            conn.execute("SET TimeZone = 'Pacific/Chatham'")
            conn.execute("SET DateStyle = 'SQL, DMY'")
            conn.commit()


def test_named_prepared_statements_do_not_outlive_their_client(
        env: ArgonEnv, project: PooledProject) -> None:
    # psycopg names its statements _pg3_0, _pg3_1, ... on every connection: a login that
    # kept the last client's would refuse the next "prepared statement already exists"
    for i in range(4):
        with psycopg.connect(project.pooled, prepare_threshold=0,
                             application_name="prepare-test") as conn:
            assert conn.execute("SELECT %s::int + 1", [i]).fetchone() == (i + 1,)
            assert conn.execute("SELECT %s::text", ["x"]).fetchone() == ("x",)


def test_a_client_that_left_before_its_answer_leaves_nothing_for_the_next(
        env: ArgonEnv, project: PooledProject) -> None:
    for _ in range(2):   # kept logins waiting, so the next session starts on one
        with psycopg.connect(project.pooled, application_name="left-early") as conn:
            conn.execute("SELECT 1")
    time.sleep(0.3)
    # send a query, then close without reading its result (a Terminate with the answer
    # still on its way), and at once take every kept login with clients held open
    conn = psycopg.connect(project.pooled, application_name="left-early", autocommit=True)
    conn.pgconn.send_query(b"SELECT 'stale', pg_sleep(1)")
    conn.pgconn.flush()
    conn.close()
    fresh = [psycopg.connect(project.pooled, application_name="left-early")
             for _ in range(4)]
    try:
        for i, c in enumerate(fresh):
            assert c.execute("SELECT %s::text", [f"fresh-{i}"]).fetchone() == (f"fresh-{i}",)
    finally:
        for c in fresh:
            c.close()


def test_a_cancel_reaches_a_session_on_a_kept_login(env: ArgonEnv,
                                                    project: PooledProject) -> None:
    for _ in range(2):   # the second session starts on the first one's login
        with psycopg.connect(project.pooled, application_name="cancel-test") as conn:
            conn.execute("SELECT 1")
    before = _reused(env)
    with psycopg.connect(project.pooled, application_name="cancel-test") as conn:
        t0 = time.monotonic()
        threading.Timer(0.5, conn.cancel_safe).start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(20)")
        assert time.monotonic() - t0 < 10
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert _reused(env) >= before   # the canceled session may or may not be kept
