"""Two Argon API processes on one Postgres metadata database.

What they share, as two API servers of one host would: the metadata database (Postgres,
started by the tests), the timelines directory and the secrets (the key that encrypts
role passwords, the bootstrap API key).  Each has its own home for the rest: its run
directory (lock, sockets, PgBouncer), logs and ports.  Home B's ``timelines`` and
``secrets`` are symbolic links to home A's.

Both create branches in one project at the same time; the metadata must stay
consistent (no duplicate or lost branch, every parent a real branch, every operation
settled, a timeline on disk for each branch).  Then the leader is killed with SIGKILL
in the middle of a branch creation: leadership moves to the other process, which
recovers the interrupted operation.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres, make_env, wait_operations
from tests.fixtures.metadata_pg import MetadataPg

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="computes run as the argon "
                                "account, which needs root to switch to")

PER_PROCESS = 5


def share_storage(a: ArgonEnv, b: ArgonEnv) -> None:
    """B's home uses A's timelines and secrets: two Argons of one install."""
    b.home.mkdir(parents=True)
    for shared in ("timelines", "secrets"):
        (b.home / shared).symlink_to(a.home / shared)


@pytest.fixture
def two_argons(metadata_pg: MetadataPg) -> Iterator[tuple[ArgonEnv, ArgonEnv, str]]:
    url = metadata_pg.new_database("two")
    a = make_env("two-a", ["--metadata-url", url])
    b = make_env("two-b", ["--metadata-url", url])
    started: list[ArgonEnv] = []
    try:
        a.start()
        started.append(a)
        suspend_all(a)
        share_storage(a, b)
        b.start()
        started.append(b)
        yield a, b, url
    finally:
        for env in reversed(started):
            env.stop()
        kill_leftover_postgres(a.home)


def suspend_all(env: ArgonEnv) -> None:
    """Stop the computes first: each process reaches only the computes it started (their
    sockets live in its own run directory); a stopped parent is branched by copying (or
    reflinking) its files, which both processes share."""
    for project in env.api("GET", "/projects").json()["projects"]:
        for ep in env.api("GET", f"/projects/{project['id']}/endpoints").json()["endpoints"]:
            r = env.api("POST", f"/projects/{project['id']}/endpoints/{ep['id']}/suspend")
            wait_operations(env.api, project["id"], r.json().get("operations", []))


def leader_log(env: ArgonEnv) -> str:
    try:
        return (env.home / "logs" / "argon.log").read_text(errors="replace")
    except OSError:
        return ""


def create_branch(env: ArgonEnv, project_id: str, parent_id: str, name: str) -> Any:
    return env.api("POST", f"/projects/{project_id}/branches",
                   json={"branch": {"name": name, "parent_id": parent_id}})


def test_two_argons_create_branches_concurrently_and_the_leadership_moves(
        two_argons: tuple[ArgonEnv, ArgonEnv, str], metadata_pg: MetadataPg) -> None:
    a, b, url = two_argons
    password = url.split(":")[2].split("@")[0]
    # Startup output and logs name the store and who leads, never the password.
    assert "metadata     Postgres postgresql://argon_meta:***@" in a.output()
    assert "this process leads" in a.output() and "another process leads" in b.output()
    for env in (a, b):
        assert password not in env.output() and password not in leader_log(env)

    project = a.default_project()
    pid = project["id"]
    main = next(x["id"] for x in a.api("GET", f"/projects/{pid}/branches").json()["branches"]
                if x["default"])
    assert b.default_project()["id"] == pid          # one project, seen by both

    names = [f"{env_name}-{i}" for env_name in ("a", "b") for i in range(PER_PROCESS)]
    jobs = [(a if n.startswith("a-") else b, n) for n in names] + [(a, "both"), (b, "both")]
    gate = threading.Barrier(len(jobs))

    def run(job: tuple[ArgonEnv, str]) -> tuple[ArgonEnv, str, Any]:
        env, name = job
        gate.wait(30)
        return env, name, create_branch(env, pid, main, name)

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(run, jobs))
    for env, name, r in results:
        if name != "both":
            assert r.status_code in (200, 201), (name, r.status_code, r.text)
            wait_operations(env.api, pid, r.json()["operations"])
    both = sorted(r.status_code for _, name, r in results if name == "both")
    assert both[0] in (200, 201) and both[1] == 409, both   # one name, one branch
    for env, name, r in results:
        if name == "both" and r.status_code in (200, 201):
            wait_operations(env.api, pid, r.json()["operations"])

    main_name = next(x["name"] for x in a.api("GET", f"/projects/{pid}/branches").json()[
        "branches"] if x["id"] == main)
    expected = {main_name, "both", *names}
    listings = [env.api("GET", f"/projects/{pid}/branches").json()["branches"]
                for env in (a, b)]
    assert sorted(x["id"] for x in listings[0]) == sorted(x["id"] for x in listings[1])
    branches = listings[0]
    assert sorted(x["name"] for x in branches) == sorted(expected)   # none lost, no twins
    ids = {x["id"] for x in branches}
    for br in branches:
        assert br["current_state"] == "ready", br
        assert br.get("parent_id") in (ids | {None}), br
        if br["id"] != main:
            assert br["parent_id"] == main
    timelines = {p.name for p in (a.home / "timelines").iterdir()}
    assert len(timelines) >= len(expected)
    ops = b.api("GET", f"/projects/{pid}/operations?limit=100").json()["operations"]
    assert all(op["status"] == "finished" for op in ops), ops

    # kill -9 the leader (a) in the middle of one more branch creation
    interrupted: dict[str, Any] = {}

    def doomed() -> None:
        try:
            interrupted["r"] = create_branch(a, pid, main, "doomed")
        except Exception as exc:  # noqa: BLE001 - the server died under the request
            interrupted["error"] = exc

    # b creates a branch meanwhile: its operation is running (waiting for the parent,
    # which a's creation holds) while b takes the lead and repairs; b's own live work
    # must be left alone by that repair.
    survivor: dict[str, Any] = {}

    def during() -> None:
        survivor["r"] = create_branch(b, pid, main, "during-takeover")

    thread = threading.Thread(target=doomed)
    thread.start()
    time.sleep(0.15)
    other = threading.Thread(target=during)
    other.start()
    time.sleep(0.15)
    a.kill9()
    thread.join(30)
    deadline = time.monotonic() + 30
    while "this process leads" not in leader_log(b):
        assert time.monotonic() < deadline, f"b did not take the lead:\n{leader_log(b)[-3000:]}"
        time.sleep(0.2)
    # The new leader settles what the dead one left: no operation runs, no branch is
    # half-made, and a branch the client was told about is complete.
    deadline = time.monotonic() + 30
    while True:
        ops = b.api("GET", f"/projects/{pid}/operations?limit=100").json()["operations"]
        branches = b.api("GET", f"/projects/{pid}/branches").json()["branches"]
        if all(op["status"] in ("finished", "failed") for op in ops) and all(
                x["current_state"] == "ready" for x in branches):
            break
        assert time.monotonic() < deadline, (ops, branches)
        time.sleep(0.2)
    other.join(120)
    r = survivor["r"]
    assert r.status_code in (200, 201), r.text
    wait_operations(b.api, pid, r.json()["operations"])
    branches = b.api("GET", f"/projects/{pid}/branches").json()["branches"]
    assert all(x["current_state"] == "ready" for x in branches), branches
    expected.add("during-takeover")
    assert expected <= {x["name"] for x in branches}
    assert {x["name"] for x in branches} - expected <= {"doomed"}
    if "r" in interrupted and interrupted["r"].status_code in (200, 201):
        assert "doomed" in {x["name"] for x in branches}   # acknowledged: it stays
    # and b, now the leader, still serves branches from the shared storage
    r = create_branch(b, pid, main, "after")
    assert r.status_code in (200, 201), r.text
    wait_operations(b.api, pid, r.json()["operations"])
    assert "after" in {x["name"] for x in
                       b.api("GET", f"/projects/{pid}/branches").json()["branches"]}
