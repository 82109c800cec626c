"""The JavaScript clients of Neon Local's guides against ``argon local``: the serverless
driver's ``neon()`` over ``/sql`` (``fetchEndpoint``), ``Pool`` with ``poolQueryViaFetch``
and over the WebSocket (``wsProxy``), and node-postgres with ``sslmode=no-verify``, all
with the one fixed string ``postgres://neon:npg@localhost:<port>/<db>``."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.compat.conftest import need_node, run_node_script
from tests.fixtures.argon_env import ArgonEnv, wait_operations
from tests.fixtures.local_door import LocalDoor

pytestmark = pytest.mark.timeout(300)


def test_serverless_driver_and_node_pg_through_the_door(argon_env: ArgonEnv,
                                                        tmp_path: Path) -> None:
    need_node("@neondatabase/serverless")
    need_node("pg")
    r = argon_env.api("POST", "/projects",
                      json={"project": {"name": f"nl-{uuid.uuid4().hex[:8]}"}})
    assert r.status_code == 201, r.text
    project = r.json()["project"]["id"]
    wait_operations(argon_env.api, project, r.json()["operations"])
    try:
        with LocalDoor(argon_env, tmp_path, {"NEON_PROJECT_ID": project}) as door:
            with argon_env.connect(door.uri()) as c:
                c.execute("CREATE TABLE items (x int)")
            res = run_node_script("neon_local.mjs", {"DOOR_PORT": str(door.port),
                                                     "DB_NAME": "neondb", "TABLE": "items"},
                                  timeout=120)
            assert res.code == 0, f"{res.stderr}\n{res.stdout}"
            out = res.json()
    finally:
        argon_env.api("DELETE", f"/projects/{project}")
    assert out["http"] == [{"db": "neondb", "n": 42}]
    assert out["viaFetch"] == [{"n": 1}]
    assert out["ws"] == [{"xs": [1, 2, 3], "u": "neondb_owner"}]
    assert out["pipelined"] == [{"seven": 7}]
    assert out["nodePg"] == [{"n": 3, "db": "neondb"}]
    assert out["badPassword"]["code"] == "28P01"
    assert out["badPasswordWs"]["code"] == "28P01"
