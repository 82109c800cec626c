"""Computes scale to zero and come back; crashes of a compute or of Argon lose nothing."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx

from tests.fixtures.argon_env import ArgonEnv
from tests.integration.core.helpers import connect, new_project


def _endpoint(env: ArgonEnv, pid: str, ep: str) -> dict:
    r = env.api("GET", f"/projects/{pid}/endpoints/{ep}")
    assert r.status_code == 200, r.text
    return r.json()["endpoint"]  # type: ignore[no-any-return]


def _wait_state(env: ArgonEnv, pid: str, ep: str, state: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _endpoint(env, pid, ep)["current_state"] == state:
            return
        time.sleep(0.2)
    raise AssertionError(f"endpoint {ep} did not become {state}: {_endpoint(env, pid, ep)}")


def _postmaster_pid(env: ArgonEnv) -> list[int]:
    pids = []
    for f in env.home.glob("timelines/*/pgdata/postmaster.pid"):
        try:
            pids.append(int(f.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
    return pids


def test_idle_compute_suspends_and_wakes_with_its_data(argon_env: ArgonEnv) -> None:
    created = new_project(argon_env, "scale-to-zero",
                          default_endpoint_settings={"suspend_timeout_seconds": 2})
    pid, main = created["project"]["id"], created["branch"]["id"]
    ep = created["endpoints"][0]["id"]
    assert created["endpoints"][0]["suspend_timeout_seconds"] == 2
    with connect(argon_env, pid, main) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('before sleep')")
    _wait_state(argon_env, pid, ep, "idle", timeout=30)
    assert _endpoint(argon_env, pid, ep)["suspended_at"]
    # the first connection wakes it; the client sees no error, and the API says what
    # the client sees from its first query on
    with connect(argon_env, pid, main) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [("before sleep",)]
        assert _endpoint(argon_env, pid, ep)["current_state"] == "active"


def test_open_session_keeps_compute_awake(argon_env: ArgonEnv) -> None:
    created = new_project(argon_env, "stay-awake",
                          default_endpoint_settings={"suspend_timeout_seconds": 1})
    pid, main = created["project"]["id"], created["branch"]["id"]
    ep = created["endpoints"][0]["id"]
    with connect(argon_env, pid, main) as conn:
        time.sleep(4)
        assert _endpoint(argon_env, pid, ep)["current_state"] == "active"
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_suspend_timeout_minus_one_never_suspends(argon_env: ArgonEnv) -> None:
    created = new_project(argon_env, "never-sleep",
                          default_endpoint_settings={"suspend_timeout_seconds": -1})
    pid, ep = created["project"]["id"], created["endpoints"][0]["id"]
    time.sleep(3)
    assert _endpoint(argon_env, pid, ep)["current_state"] == "active"


def test_kill_9_of_a_compute_loses_no_committed_row(argon_env: ArgonEnv) -> None:
    created = new_project(argon_env, "compute-crash")
    pid, main = created["project"]["id"], created["branch"]["id"]
    with connect(argon_env, pid, main) as conn:
        conn.execute("CREATE TABLE durable (id int)")
        conn.execute("INSERT INTO durable SELECT generate_series(1, 1000)")
        backend_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        postmaster = int(conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'"
        ).fetchone()[0])
    # the checkpointer's parent is the postmaster
    with open(f"/proc/{postmaster}/stat") as f:
        ppid = int(f.read().split()[3])
    assert backend_pid != ppid
    os.kill(ppid, signal.SIGKILL)
    time.sleep(0.5)
    with connect(argon_env, pid, main) as conn:
        assert conn.execute("SELECT count(*) FROM durable").fetchone() == (1000,)


def test_kill_9_of_argon_loses_nothing_and_restart_readopts(fresh_argon_env: ArgonEnv) -> None:
    env = fresh_argon_env
    pid = env.default_project()["id"]
    branches = env.api("GET", f"/projects/{pid}/branches").json()["branches"]
    main = next(b["id"] for b in branches if b["default"])
    with connect(env, pid, main) as conn:
        conn.execute("CREATE TABLE survived (id int)")
        conn.execute("INSERT INTO survived SELECT generate_series(1, 500)")
    env.kill9()
    env.start()
    with connect(env, pid, main) as conn:
        assert conn.execute("SELECT count(*) FROM survived").fetchone() == (500,)
    assert "re-adopted" in env.output() or "Argon is running" in env.output()


def test_kill_9_during_branch_creation_leaves_no_half_made_branch(
        fresh_argon_env: ArgonEnv) -> None:
    env = fresh_argon_env
    project = env.default_project()
    pid = project["id"]
    branches = env.api("GET", f"/projects/{pid}/branches").json()["branches"]
    main = next(b["id"] for b in branches if b["default"])
    with connect(env, pid, main) as conn:
        conn.execute("CREATE TABLE big AS SELECT g AS id, repeat('x', 200) AS pad "
                     "FROM generate_series(1, 100000) g")
    for delay in (0.05, 0.15, 0.3):
        def create(name: str = f"crash-{delay}") -> None:
            try:
                env.api("POST", f"/projects/{pid}/branches",
                        json={"branch": {"name": name}, "endpoints": [{"type": "read_write"}]})
            except httpx.HTTPError:
                pass  # Argon was killed mid-request: that is the point of the test

        t = threading.Thread(target=create)
        t.start()
        time.sleep(delay)
        env.kill9()
        t.join()
        env.start()
        listed = env.api("GET", f"/projects/{pid}/branches").json()["branches"]
        assert all(b["current_state"] == "ready" for b in listed), listed
        timelines = {p.name for p in (env.home / "timelines").iterdir() if p.is_dir()}
        assert len(timelines) == len(listed), (timelines, listed)
        for b in listed:
            with connect(env, pid, b["id"]) as conn:
                assert conn.execute("SELECT count(*) FROM big").fetchone() == (100000,)



def test_a_branch_whose_creation_never_answered_is_removed_at_the_next_start(
        fresh_argon_env: ArgonEnv) -> None:
    """A crash after a branch is marked ready but before its endpoints exist (and its
    operation ends) must not leave a branch without the endpoint it asked for. The
    window is narrow, so the crash is made exact: the finished operation is put back to
    'running', as the kill -9 would have left it."""
    import sqlalchemy as sa

    env = fresh_argon_env
    pid = env.default_project()["id"]
    timelines_before = set((env.home / "timelines").iterdir())
    r = env.api("POST", f"/projects/{pid}/branches",
                json={"branch": {"name": "unanswered"}, "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    branch = r.json()["branch"]
    (new_timeline,) = set((env.home / "timelines").iterdir()) - timelines_before
    postmaster = int((new_timeline / "pgdata" / "postmaster.pid").read_text().split()[0])
    env.kill9()
    engine = sa.create_engine(env.metadata_url)
    with engine.begin() as conn:
        changed = conn.execute(sa.text(
            "UPDATE operations SET status = 'running' WHERE branch_id = :b "
            "AND action = 'create_branch'"), {"b": branch["id"]}).rowcount
    engine.dispose()
    assert changed == 1
    env.start()
    names = [b["name"] for b in env.api("GET", f"/projects/{pid}/branches").json()["branches"]]
    assert "unanswered" not in names, names
    assert env.api("GET", f"/projects/{pid}/branches/{branch['id']}").status_code == 404
    assert not new_timeline.exists()
    deadline = time.monotonic() + 30
    while _alive(postmaster) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(postmaster)   # its compute was stopped, not left running


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
