"""Each proxy session's log lines carry an id of its own, the lines of the wake it
started included.  An endpoint's listener is opened inside the API request that made the
endpoint; its sessions used to log under that request's id, so a search for one API
call's lines also found every later session of the endpoint, all under one id."""

from __future__ import annotations

import re
import time

import psycopg

from tests.fixtures.argon_env import ArgonEnv
from tests.integration.core.helpers import new_project

SESSION_LINE = re.compile(r"\[([^\]]+)\] session from \S+ endpoint=(\S+) outcome=ok")


def _log(env: ArgonEnv) -> str:
    return (env.home / "logs" / "argon.log").read_text(errors="replace")


def _session_ids(env: ArgonEnv, endpoint_id: str, count: int) -> list[str]:
    deadline = time.monotonic() + 10
    while True:   # a session's line is written once its client has gone
        ids = [m.group(1) for m in SESSION_LINE.finditer(_log(env)) if m.group(2) == endpoint_id]
        if len(ids) >= count or time.monotonic() > deadline:
            return ids
        time.sleep(0.1)


def _select_1(uri: str) -> None:
    with psycopg.connect(uri, connect_timeout=60) as conn:
        conn.execute("SELECT 1").fetchone()


def test_proxy_sessions_log_under_their_own_ids(argon_env: ArgonEnv) -> None:
    env = argon_env
    pid = new_project(env, "session-log-ids")["project"]["id"]
    api_request = "made-the-endpoint-of-the-session-log-test"
    r = env.api("POST", f"/projects/{pid}/branches", headers={"x-request-id": api_request},
                json={"branch": {"name": "sessions"}, "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    assert r.headers["x-request-id"] == api_request
    endpoint = r.json()["endpoints"][0]["id"]
    uri = r.json()["connection_uris"][0]["connection_uri"]
    _select_1(uri)
    _select_1(uri)
    ids = _session_ids(env, endpoint, 2)
    assert len(ids) == 2, ids
    assert api_request not in ids and "-" not in ids
    assert ids[0] != ids[1]

    r = env.api("POST", f"/projects/{pid}/endpoints/{endpoint}/suspend")
    assert r.status_code == 200, r.text
    _select_1(uri)   # wakes it
    waking = _session_ids(env, endpoint, 3)[2]
    assert waking not in ids
    assert f"[{waking}] started compute {endpoint}" in _log(env)
