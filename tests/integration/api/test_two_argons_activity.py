"""Two Argon processes on one Postgres metadata database: a session open through one
keeps the compute running while the other one leads (and suspends idle computes).

A client holds a pooled connection through process B's proxy and stays idle: after
PgBouncer's ``server_idle_timeout`` (30 s) no backend of the compute shows it, so the
leader A sees nothing in Postgres' own view; only B's open proxy session (a shared
advisory lock, control/coordinator.py) tells A that the endpoint is in use.  The
compute must run past its suspend timeout for as long as the session is open, and A
must suspend it once the client has left.

Until computes record their address (another part of this work), each process reaches
only the sockets of the computes it started; the test links A's socket directory for
the endpoint to B's, as two API servers sharing one run directory would, so that A can
look at the compute's backends and stop it.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from argon.compute.sockets import socket_dir_for
from tests.fixtures.argon_env import ArgonEnv
from tests.integration.api.test_two_argons_one_metadata import (  # noqa: F401 - fixture
    leader_log,
    two_argons,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="computes run as the argon "
                                "account, which needs root to switch to")

SUSPEND_TIMEOUT = 3
POOLER_SERVER_IDLE = 30    # compute/pooler.py: server_idle_timeout


def endpoint_state(env: ArgonEnv, project_id: str, endpoint_id: str) -> str:
    r = env.api("GET", f"/projects/{project_id}/endpoints/{endpoint_id}")
    assert r.status_code == 200, r.text
    return str(r.json()["endpoint"]["current_state"])


def test_a_session_through_one_argon_keeps_the_compute_while_the_other_leads(
        two_argons: tuple[ArgonEnv, ArgonEnv, str]) -> None:
    a, b, _ = two_argons
    assert "this process leads" in a.output()
    pid = a.default_project()["id"]
    ep = a.api("GET", f"/projects/{pid}/endpoints").json()["endpoints"][0]["id"]
    r = a.api("PATCH", f"/projects/{pid}/endpoints/{ep}",
              json={"endpoint": {"suspend_timeout_seconds": SUSPEND_TIMEOUT}})
    assert r.status_code == 200, r.text
    r = b.api("GET", f"/projects/{pid}/connection_uri",
              params={"database_name": "neondb", "role_name": "neondb_owner"})
    assert r.status_code == 200, r.text
    # B's own proxy port, naming the pooled endpoint (the per-endpoint ports of the
    # connection string are A's: B could not listen on them)
    client = b.connect(r.json()["uri"], host="127.0.0.1", port=b.pg_port,
                       options=f"endpoint={ep}-pooler")
    try:
        assert client.execute("SELECT 1").fetchone() == (1,)
        # B woke the compute (it records the start just after letting the client in)
        deadline = time.monotonic() + 15
        while f"started compute {ep}" not in leader_log(b) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert f"started compute {ep}" in leader_log(b)
        assert endpoint_state(a, pid, ep) == "active"
        theirs, ours = socket_dir_for(b.home, ep), socket_dir_for(a.home, ep)
        shutil.rmtree(ours, ignore_errors=True)
        ours.symlink_to(theirs)
        # idle past PgBouncer's server_idle_timeout and the suspend timeout, several times
        # over the leader's checks: the compute keeps running
        held_until = time.monotonic() + POOLER_SERVER_IDLE + 4 * SUSPEND_TIMEOUT
        while time.monotonic() < held_until:
            assert endpoint_state(a, pid, ep) == "active", (
                "the leader suspended a compute with a session open through the other "
                f"Argon:\n{leader_log(a)[-2000:]}")
            time.sleep(1)
        assert f"suspended compute {ep} (idle for" not in leader_log(a)
        assert client.execute("SELECT 2").fetchone() == (2,)   # and the session works
    finally:
        client.close()
    # the client left: the leader suspends the compute after its timeout, once PgBouncer
    # has given back the server connection that ran the last query (a client backend)
    deadline = time.monotonic() + POOLER_SERVER_IDLE + 30
    while endpoint_state(a, pid, ep) != "idle":
        assert time.monotonic() < deadline, (
            f"the leader did not suspend the idle compute:\n{leader_log(a)[-3000:]}")
        time.sleep(0.5)
    assert f"suspended compute {ep} (idle for {SUSPEND_TIMEOUT} s)" in leader_log(a)
