"""The connection path's shortcuts (issue 8, connections per second), on a real Argon:

- the compute login begins while the client authenticates (``argon.proxy.early``): a
  client that fails or stalls its authentication leaves no compute backend behind, and
  at most ``EARLY_PER_ENDPOINT`` such backends wait per endpoint whatever the number of
  stalled clients, while clients with the password keep connecting;
- pooled sessions start on a ready PgBouncer login (``argon.proxy.spares``) and behave
  as fresh ones: the right role, server parameters, a cancel that reaches their query,
  the compute still suspends when idle, and a changed password refuses the old one.

A direct session whose startup parameters match a backend kept by an earlier session
starts there instead (``argon.proxy.backend_reset``), so the early-login tests give each
connection an application_name of its own (``_fresh``).
"""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

from argon.proxy import pq
from argon.proxy.early import EARLY_PER_ENDPOINT
from tests.fixtures.argon_env import ArgonEnv, metric_value, running_env
from tests.fixtures.faults import postmaster_pid, timeline_of
from tests.integration.proxy.pooled_project import PooledProject, create_pooled_project


@pytest.fixture(scope="module")
def env() -> Iterator[ArgonEnv]:
    with running_env("login-shortcuts") as env:
        yield env


@pytest.fixture(scope="module")
def project(env: ArgonEnv) -> PooledProject:
    return create_pooled_project(env, "shortcuts")


_metric = metric_value


def _fresh(uri: str) -> str:
    """``uri`` with an application_name no earlier session used: no kept backend waits
    for it, so the session logs in (early, for a running compute)."""
    return f"{uri}&application_name=early-{uuid.uuid4().hex[:12]}"


def _with_password(uri: str, password: str) -> str:
    parts = urlsplit(uri)
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user.split(':')[0]}:{quote(password)}@{host}"))


def _backends_in_authentication(env: ArgonEnv, project: PooledProject) -> int:
    """Backends of the project's compute still authenticating as the project's role
    (their process title: "postgres: <role> <db> [local] authentication"); Argon's own
    cloud_admin logins are left out."""
    branch = env.api("GET", f"/projects/{project.id}/endpoints/{project.endpoint}").json()[
        "endpoint"]["branch_id"]
    pid = postmaster_pid(env.home, timeline_of(env.home, branch))
    assert pid is not None, "the compute is not running"
    # -ww: without it ps cuts each title to $COLUMNS (set in CI), and a long endpoint
    # name pushes "authentication" past that
    out = subprocess.run(["ps", "-ww", "--ppid", str(pid), "-o", "args="],
                         capture_output=True, text=True, check=True).stdout
    return sum("authentication" in line and f" {project.role} " in line
               for line in out.splitlines())


def _wait_for(predicate, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _stalled_client(uri: str) -> ssl.SSLSocket:
    """TLS and a startup packet for the project's role, then silence: the proxy has sent
    its SCRAM request and waits for a proof that never comes."""
    u = urlsplit(uri)
    assert u.hostname and u.port and u.username
    raw = socket.create_connection((u.hostname, u.port), timeout=10)
    raw.sendall(struct.pack("!ii", 8, pq.SSL_REQUEST_CODE))
    assert raw.recv(1) == b"S"
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    sock = ctx.wrap_socket(raw)
    sock.sendall(pq.startup_message({"user": u.username, "database": u.path.lstrip("/"),
                                     "application_name": f"stalled-{uuid.uuid4().hex[:8]}"}))
    head = sock.recv(5)
    assert head[:1] == b"R", head     # AuthenticationSASL from the proxy
    return sock


def test_failed_logins_leave_no_compute_backend(env: ArgonEnv, project: PooledProject) -> None:
    with psycopg.connect(project.direct) as conn:     # the compute runs
        conn.execute("SELECT 1")
    early_before = _metric(env, "argon_proxy_early_connections_total")
    for _ in range(10):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(_fresh(_with_password(project.direct, "not-the-password")),
                            connect_timeout=10)
    assert _wait_for(lambda: _backends_in_authentication(env, project) == 0)
    # the early connections were opened and thrown away, never used for a session
    assert _metric(env, "argon_proxy_early_connections_total") == early_before
    with psycopg.connect(_fresh(project.direct)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (project.role,)
    assert _metric(env, "argon_proxy_early_connections_total") == early_before + 1


def _newest_start(env: ArgonEnv, project: PooledProject) -> tuple[str, str] | None:
    """(id, status) of the endpoint's newest start_compute operation (listed newest first)."""
    ops = env.api("GET", f"/projects/{project.id}/operations").json()["operations"]
    return next(((o["id"], o["status"]) for o in ops if o["action"] == "start_compute"
                 and o["endpoint_id"] == project.endpoint), None)


def test_the_session_after_a_wake_logs_in_early(env: ArgonEnv, project: PooledProject) -> None:
    r = env.api("POST", f"/projects/{project.id}/endpoints/{project.endpoint}/suspend")
    assert r.status_code == 200, r.text
    before_wake = _newest_start(env, project)
    with psycopg.connect(project.direct) as conn:   # wakes it: no route yet, no early login
        conn.execute("SELECT 1")

    def recorded() -> bool:
        newest = _newest_start(env, project)
        return newest is not None and newest != before_wake and newest[1] == "finished"
    assert _wait_for(recorded)
    time.sleep(0.3)   # the start leaves the route in the proxy's memory as it ends
    before = _metric(env, "argon_proxy_early_connections_total")
    # the wake's client was let in before the start finished: the route the start found
    # is kept anyway, so the very next session logs in while its client authenticates
    with psycopg.connect(_fresh(project.direct)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (project.role,)
    assert _metric(env, "argon_proxy_early_connections_total") == before + 1


def test_the_first_session_of_a_new_branch_logs_in_early(env: ArgonEnv,
                                                          project: PooledProject) -> None:
    r = env.api("POST", f"/projects/{project.id}/branches", json={
        "branch": {"name": "early-first"}, "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    body = r.json()
    try:
        before = _metric(env, "argon_proxy_early_connections_total")
        # the branch's start left the compute's route in the proxy's memory: its very
        # first session logs in to the compute while the client authenticates
        with psycopg.connect(body["connection_uris"][0]["connection_uri"]) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (project.role,)
        assert _metric(env, "argon_proxy_early_connections_total") == before + 1
    finally:
        env.api("DELETE", f"/projects/{project.id}/branches/{body['branch']['id']}")


def _early_logins_in_use(env: ArgonEnv, project: PooledProject) -> bool:
    """Connect with the password until a session starts on an early connection: early
    logins need the compute's route in the proxy's memory, which an authenticated
    connection refills after a compute event (a stalled client never does)."""
    for _ in range(5):
        before = _metric(env, "argon_proxy_early_connections_total")
        with psycopg.connect(_fresh(project.direct)) as conn:
            conn.execute("SELECT 1")
        if _metric(env, "argon_proxy_early_connections_total") > before:
            return True
        time.sleep(0.2)
    return False


def test_stalled_clients_hold_a_bounded_number_of_compute_logins(
        env: ArgonEnv, project: PooledProject) -> None:
    # the precondition: early logins happen for this endpoint now (else none to bound)
    assert _early_logins_in_use(env, project)
    failures_before = _metric(env, "argon_proxy_early_failures_total")
    attempts_before = _metric(env, "argon_proxy_early_attempts_total")
    stalled = [_stalled_client(project.direct) for _ in range(EARLY_PER_ENDPOINT + 6)]
    try:
        # as many compute logins begun as the bound allows, and no more
        assert _metric(env, "argon_proxy_early_attempts_total") - attempts_before == \
            EARLY_PER_ENDPOINT
        seen: list[int] = []   # every count observed: the bound must hold at each one

        def holding() -> int:
            seen.append(_backends_in_authentication(env, project))
            return seen[-1]
        # generous: forks are slow on a loaded 2-core machine
        reached = _wait_for(lambda: holding() == EARLY_PER_ENDPOINT, timeout=30)
        time.sleep(0.5)
        holding()
        assert max(seen) <= EARLY_PER_ENDPOINT, seen
        failed = _metric(env, "argon_proxy_early_failures_total") - failures_before
        assert reached and seen[-1] == EARLY_PER_ENDPOINT, (
            f"counts seen: {seen[:5]}...{seen[-5:]} ({len(seen)} polls); "
            f"early logins the compute did not answer: {failed}")
        # a client with the password is not held up by them
        with psycopg.connect(project.direct, connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        for sock in stalled:
            sock.close()
    assert _wait_for(lambda: _backends_in_authentication(env, project) == 0)


def test_pooled_sessions_on_ready_logins_behave_as_fresh_ones(
        env: ArgonEnv, project: PooledProject) -> None:
    spares_before = _metric(env, "argon_proxy_spare_logins_total")
    versions = set()
    for i in range(6):
        with psycopg.connect(project.pooled, application_name="shortcut-test") as conn:
            assert conn.execute("SELECT current_user").fetchone() == (project.role,)
            versions.add(conn.info.parameter_status("server_version"))
            if i == 4:   # a cancel reaches the query of a session that began on a spare
                t0 = time.monotonic()
                threading.Timer(0.5, conn.cancel_safe).start()
                with pytest.raises(psycopg.errors.QueryCanceled):
                    conn.execute("SELECT pg_sleep(20)")
                assert time.monotonic() - t0 < 10
        time.sleep(0.2)   # the spare for the next session is opened in the background
    assert len(versions) == 1 and None not in versions
    assert _metric(env, "argon_proxy_spare_logins_total") >= spares_before + 4


def test_ready_logins_do_not_keep_the_compute_awake(env: ArgonEnv,
                                                    project: PooledProject) -> None:
    r = env.api("PATCH", f"/projects/{project.id}/endpoints/{project.endpoint}",
                json={"endpoint": {"suspend_timeout_seconds": 1}})
    assert r.status_code == 200, r.text
    for _ in range(3):
        with psycopg.connect(project.pooled) as conn:
            conn.execute("SELECT 1")
    assert _wait_for(lambda: env.api("GET", f"/projects/{project.id}/endpoints/"
                                     f"{project.endpoint}").json()["endpoint"]
                     ["current_state"] == "idle", timeout=60)
    with psycopg.connect(project.pooled) as conn:    # and it wakes as before
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_changed_password_never_reuses_a_ready_login(env: ArgonEnv,
                                                       project: PooledProject) -> None:
    with psycopg.connect(project.pooled) as conn:    # leaves spares for the old password
        conn.execute("SELECT 1")
    time.sleep(0.3)
    r = env.api("POST", f"/projects/{project.id}/branches/"
                f"{_branch(env, project)}/roles/{project.role}/reset_password")
    assert r.status_code == 200, r.text
    new_password = r.json()["role"]["password"]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(project.pooled, connect_timeout=10)
    new_uri = _with_password(project.pooled, new_password)
    with psycopg.connect(new_uri) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (project.role,)


def _branch(env: ArgonEnv, project: PooledProject) -> str:
    return str(env.api("GET", f"/projects/{project.id}/endpoints/{project.endpoint}").json()[
        "endpoint"]["branch_id"])
