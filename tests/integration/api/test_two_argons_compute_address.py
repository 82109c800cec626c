"""Two Argon processes on one Postgres metadata database reach one compute.

A starts an endpoint's compute; the address its provider returned is recorded in the
metadata (``endpoints.compute_host`` with ``compute_port``).  A client that connects
through B's proxy is routed to that address: it reads the rows written through A, and
no second postmaster is started on the shared data directory.  Once A stops the compute
(the record is cleared), a connection through B makes B start it itself.

The setup is that of test_two_argons_one_metadata.py (the timelines and secrets of home
B are symbolic links to home A's; run directory, sockets, logs and ports are each
process's own), with one more wall: B runs in its own PID namespace, so, as on another
host, it cannot see A's postmasters (``postmaster.pid`` names a process B has not got).
Without the recorded address B would try to start the compute on the data directory A's
postmaster holds, and the client would get an error.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from argon.compute.pidfile import verified
from argon.compute.sockets import socket_dir_for
from tests.fixtures.argon_env import ArgonEnv, make_env, wait_operations
from tests.fixtures.metadata_pg import MetadataPg
from tests.integration.api.test_two_argons_one_metadata import share_storage

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="computes run as the argon "
                                "account, which needs root to switch to")


# B's own PID namespace (and a /proc of its own); its postmasters die with it
OTHER_HOST = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"]


@pytest.fixture
def two_argons(metadata_pg: MetadataPg) -> Iterator[tuple[ArgonEnv, ArgonEnv, str]]:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to run the second Argon in its own PID "
                    "namespace")
    url = metadata_pg.new_database("addr")
    a = make_env("addr-a", ["--metadata-url", url])
    b = make_env("addr-b", ["--metadata-url", url])
    b.launcher = OTHER_HOST
    started: list[ArgonEnv] = []
    try:
        a.start()
        started.append(a)
        share_storage(a, b)
        b.start()
        started.append(b)
        yield a, b, url
    finally:
        if b in started:
            _stop_in_namespace(b)
        if a in started:
            a.stop()
        _kill_verified_postmasters(a.home)


def _stop_in_namespace(env: ArgonEnv) -> None:
    """SIGTERM to Argon itself (unshare ignores it), then wait for unshare to exit."""
    assert env.proc is not None
    children = Path(f"/proc/{env.proc.pid}/task/{env.proc.pid}/children")
    try:
        for child in children.read_text().split():
            os.kill(int(child), signal.SIGTERM)
    except OSError:
        pass
    env.stop(timeout=60)


def _kill_verified_postmasters(home: Path) -> None:
    """As kill_leftover_postgres, but only a pid file that names a postmaster of its data
    directory here: one written in B's namespace holds a pid that means nothing here."""
    for pidfile in home.glob("timelines/*/pgdata/postmaster.pid"):
        pf = verified(pidfile.parent)
        if pf is not None:
            os.kill(pf.pid, signal.SIGQUIT)
    for pidfile in home.glob("run/pgbouncer/*/pgbouncer.pid"):   # A's own
        try:
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
        except (OSError, ValueError, IndexError):
            pass


def _metadata(url: str, sql: str, *args: Any) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, args).fetchone()


def _through(env: ArgonEnv, uri: str, endpoint_id: str) -> str:
    """The connection string ``uri`` pointed at ``env``'s own proxy port (the endpoint
    named in ``options``: the per-endpoint loopback ports are the first process's)."""
    parts = urlsplit(uri)
    userinfo = parts.netloc.rsplit("@", 1)[0]
    query = f"sslmode=require&options=endpoint%3D{endpoint_id}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@127.0.0.1:{env.pg_port}",
                                     query=query))


def _postmasters(pgdata: Path) -> list[int]:
    """Postmasters working in ``pgdata`` (a postgres process whose parent is not one)."""
    found = []
    resolved = pgdata.resolve()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (Path(os.readlink(entry / "cwd")) != resolved
                    or not (entry / "cmdline").read_bytes().startswith(b"/")):
                continue
            comm = (entry / "comm").read_text().strip()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            parent_cwd = os.readlink(f"/proc/{ppid}/cwd") if ppid > 1 else ""
        except (OSError, ValueError):
            continue
        if comm == "postgres" and Path(parent_cwd or "/") != resolved:
            found.append(int(entry.name))
    return found


def _suspend(env: ArgonEnv, project_id: str, endpoint_id: str) -> None:
    r = env.api("POST", f"/projects/{project_id}/endpoints/{endpoint_id}/suspend")
    assert r.status_code == 200, r.text
    wait_operations(env.api, project_id, r.json().get("operations", []))


def test_b_routes_to_the_compute_a_started_then_starts_it_once_a_stopped_it(
        two_argons: tuple[ArgonEnv, ArgonEnv, str]) -> None:
    a, b, url = two_argons
    project = a.default_project()
    pid = project["id"]
    ep = a.api("GET", f"/projects/{pid}/endpoints").json()["endpoints"][0]
    endpoint_id = ep["id"]
    uri = a.api("GET", f"/projects/{pid}/connection_uri",
                params={"database_name": "neondb", "role_name": "neondb_owner"}
                ).json()["uri"]
    with a.connect(_through(a, uri, endpoint_id)) as conn:   # A starts the compute
        conn.execute("CREATE TABLE seen (who text)")
        conn.execute("INSERT INTO seen VALUES ('written through a')")
    timeline = _metadata(url, "SELECT b.timeline_id FROM endpoints e JOIN branches b "
                         "ON b.id = e.branch_id WHERE e.id = %s", endpoint_id)[0]
    pgdata = a.home / "timelines" / timeline / "pgdata"
    owner = _postmasters(pgdata)
    assert len(owner) == 1, owner
    host, port = _metadata(url, "SELECT compute_host, compute_port FROM endpoints "
                           "WHERE id = %s", endpoint_id)
    # A's provider answered a unix socket in A's own run directory: that is the record
    assert host == str(socket_dir_for(a.home, endpoint_id))
    assert Path(host, f".s.PGSQL.{port}").is_socket()

    with b.connect(_through(b, uri, endpoint_id)) as conn:
        assert conn.execute("SELECT who FROM seen").fetchall() == [("written through a",)]
        assert conn.execute("SELECT inet_server_port()").fetchone() == (None,)   # unix
        conn.execute("INSERT INTO seen VALUES ('written through b')")
    assert _postmasters(pgdata) == owner                  # no second postmaster
    assert int((pgdata / "postmaster.pid").read_text().split()[0]) == owner[0]
    assert not socket_dir_for(b.home, endpoint_id).exists()   # B made no socket of its own

    _suspend(a, pid, endpoint_id)
    assert _postmasters(pgdata) == []
    assert _metadata(url, "SELECT compute_host FROM endpoints WHERE id = %s",
                     endpoint_id) == (None,)
    deadline = time.monotonic() + 60
    while True:   # B's cached route fails over to a start of its own
        try:
            with b.connect(_through(b, uri, endpoint_id)) as conn:
                rows = conn.execute("SELECT who FROM seen ORDER BY 1").fetchall()
            break
        except psycopg.OperationalError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert rows == [("written through a",), ("written through b",)]
    started_by_b = _postmasters(pgdata)
    assert len(started_by_b) == 1 and started_by_b != owner
    # the start is recorded just after the woken client is let in
    deadline = time.monotonic() + 15
    while True:
        host_b, _ = _metadata(url, "SELECT compute_host, compute_port FROM endpoints "
                              "WHERE id = %s", endpoint_id)
        if host_b is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert host_b == str(socket_dir_for(b.home, endpoint_id))
    _suspend(b, pid, endpoint_id)
