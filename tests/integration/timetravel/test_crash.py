"""Kill -9 of Argon during a restore leaves the old or the new state, never a mix."""

from __future__ import annotations

import threading
import time
import httpx
import pytest

from tests.fixtures.argon_env import ArgonEnv
from tests.integration.core.helpers import connect, create_branch, new_project


@pytest.mark.parametrize("delay", [0.3, 1.2])
def test_kill9_during_restore_leaves_old_or_new_state(fresh_argon_env: ArgonEnv,
                                                      delay: float) -> None:
    env = fresh_argon_env
    created = new_project(env, "crash")
    pid, main = created["project"]["id"], created["branch"]["id"]
    with connect(env, pid, main) as conn:
        conn.execute("CREATE TABLE t (id int)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 2000)")
    dev = create_branch(env, pid, "dev", parent_id=main)["branch"]
    with connect(env, pid, dev["id"]) as conn:
        conn.execute("DELETE FROM t WHERE id > 10")   # old state: 10 rows; new state: 2000

    def restore() -> None:
        try:
            env.api("POST", f"/projects/{pid}/branches/{dev['id']}/restore",
                    json={"source_branch_id": main})
        except httpx.HTTPError:
            pass  # the server died under it

    worker = threading.Thread(target=restore)
    worker.start()
    time.sleep(delay)
    env.kill9()
    worker.join(timeout=60)
    env.start()
    b = env.api("GET", f"/projects/{pid}/branches/{dev['id']}").json()["branch"]
    assert b["current_state"] == "ready" and b["name"] == "dev"
    with connect(env, pid, dev["id"]) as conn:
        n = conn.execute("SELECT count(*) FROM t").fetchone()[0]  # type: ignore[index]
    assert n in (10, 2000)
    # no timeline directory is left that the metadata does not know
    names = [b["name"] for b in env.api("GET", f"/projects/{pid}/branches").json()["branches"]]
    assert sorted(names) == ["dev", "main"]
    total = sum(len(env.api("GET", f"/projects/{p['id']}/branches").json()["branches"])
                for p in env.api("GET", "/projects").json()["projects"])
    tl_dirs = [p for p in (env.home / "timelines").iterdir() if not p.name.startswith(".")]
    assert len(tl_dirs) == total
