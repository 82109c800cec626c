"""Local accounts cannot reach computes or PgBouncers without a role's password (issue 8.1).

A real Argon with two projects, each woken directly and through its ``-pooler`` door,
probed as an unprivileged local account (``nobody``) and as the Postgres account
(``argon``) itself, which every compute runs as.  Each probe runs in a child process
under ``runuser`` with Argon's own Python, so it meets exactly the permissions that
account has.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from argon.compute.pooler import AUTH_FILE_NAME
from argon.compute.sockets import socket_dir_for
from argon.control.admin_password import AdminPasswords
from argon.proxy import pq
from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres, make_env
from tests.integration.core.helpers import new_project

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="probing as other local accounts needs root (runuser)")

# Run by the system's python3 (Argon's venv may not be readable by other accounts);
# connections go through psql, which never prompts (-w) and reads no password file.
PROBE = r"""
import json, os, socket, subprocess, sys
out = []
for kind, arg in json.load(sys.stdin):
    try:
        if kind == "connect":
            arg = dict(arg)
            env = {"PATH": "/usr/bin:/bin", "PGPASSFILE": "/nonexistent/.pgpass", "PGCONNECT_TIMEOUT": "10"}
            if "password" in arg:
                env["PGPASSWORD"] = arg.pop("password")
            dsn = " ".join(f"{k}={v}" for k, v in arg.items())
            r = subprocess.run(["psql", "-X", "-w", "-qAt", "-c", "SELECT 1", dsn],
                               capture_output=True, text=True, env=env, timeout=60)
            if r.returncode != 0:
                raise RuntimeError(r.stderr.strip())
        elif kind == "socket":
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(arg)
        elif kind == "read":
            with open(arg, "rb") as f:
                f.read(1)
        out.append("ok")
    except Exception as e:
        out.append(f"{type(e).__name__}: {e}")
print(json.dumps(out))
"""
PYTHON = "/usr/bin/python3"


def probe(account: str, *steps: tuple[str, Any]) -> list[str]:
    """Run ``steps`` as ``account``; each answers "ok" or the exception it raised."""
    res = subprocess.run(["runuser", "-u", account, "--", PYTHON, "-c", PROBE],
                         input=json.dumps(steps), capture_output=True, text=True, timeout=300,
                         cwd="/")
    assert res.returncode == 0, res.stderr
    return list(json.loads(res.stdout))


def refused(answer: str) -> bool:
    return answer != "ok" and ("password" in answer or "Permission denied" in answer
                               or "authentication failed" in answer)


class Project:
    def __init__(self, env: ArgonEnv, name: str) -> None:
        created = new_project(env, name)
        self.id: str = created["project"]["id"]
        self.endpoint: str = created["endpoints"][0]["id"]
        self.uri: str = created["connection_uris"][0]["connection_uri"]
        r = env.api("GET", f"/projects/{self.id}/connection_uri", params={
            "database_name": "neondb", "role_name": "neondb_owner", "pooled": "true"})
        assert r.status_code == 200, r.text
        self.pooled_uri: str = r.json()["uri"]
        self.password = psycopg.conninfo.conninfo_to_dict(self.uri)["password"]
        self.admin_password = AdminPasswords(env.home / "secrets").for_project(self.id)
        self.home = env.home

    @property
    def socket_dir(self) -> Path:
        return socket_dir_for(self.home, self.endpoint)

    @property
    def pooler_socket_dir(self) -> Path:
        return socket_dir_for(self.home, self.endpoint + "-pooler")

    def compute_port(self) -> int:
        (sock,) = self.socket_dir.glob(".s.PGSQL.*[0-9]")
        return int(sock.name.rsplit(".", 1)[1])

    def pooler_port(self) -> int:
        (sock,) = self.pooler_socket_dir.glob(".s.PGSQL.*[0-9]")
        return int(sock.name.rsplit(".", 1)[1])

    def compute(self, **kw: Any) -> dict[str, Any]:
        return {"host": str(self.socket_dir), "port": self.compute_port(), "dbname": "postgres",
                "user": "cloud_admin", **kw}

    def pooler(self, **kw: Any) -> dict[str, Any]:
        return {"host": str(self.pooler_socket_dir), "port": self.pooler_port(),
                "dbname": "neondb", "user": "neondb_owner", **kw}


def tcp_listeners() -> list[tuple[str, int, str, int]]:
    """(address, port, process name, pid) of every listening TCP socket on the host."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        cols = line.split()
        addr, _, port = cols[3].rpartition(":")
        for name, pid in re.findall(r'\("([^"]+)",pid=(\d+)', line):
            rows.append((addr.strip("[]"), int(port), name, int(pid)))
    return rows


@pytest.fixture(scope="module")
def platform() -> Iterator[tuple[ArgonEnv, Project, Project]]:
    env = make_env("local-access")
    env.start()
    try:
        a, b = Project(env, "sec-a"), Project(env, "sec-b")
        for p in (a, b):   # wake each compute and its PgBouncer through the proxy
            for uri in (p.uri, p.pooled_uri):
                with psycopg.connect(uri, autocommit=True, connect_timeout=60) as conn:
                    assert conn.execute("SELECT current_user").fetchone() == ("neondb_owner",)
        yield env, a, b
    finally:
        env.stop()
        kill_leftover_postgres(env.home)


def test_pgbouncer_and_computes_have_no_tcp_port(
        platform: tuple[ArgonEnv, Project, Project]) -> None:
    env, a, b = platform
    bouncers = {int((d / "pgbouncer.pid").read_text()) for d in
                (env.home / "run" / "pgbouncer").iterdir() if (d / "pgbouncer.pid").exists()}
    assert len(bouncers) == 2
    listeners = tcp_listeners()
    assert [row for row in listeners if row[3] in bouncers] == []
    assert env.proc is not None
    argon_ports = {port for _addr, port, _name, pid in listeners if pid == env.proc.pid}
    assert {env.api_port, env.pg_port, env.http_port} <= argon_ports
    # anything else Argon listens on is an endpoint's own proxy door (local mode)
    doors: set[int] = set()
    for project in env.api("GET", "/projects").json()["projects"]:
        for ep in env.api("GET", f"/projects/{project['id']}/endpoints").json()["endpoints"]:
            doors.add(int(ep["host"].rsplit(":", 1)[1]))       # "127.0.0.1:<port>" locally
        pooled = env.api("GET", f"/projects/{project['id']}/connection_uri", params={
            "database_name": "neondb", "role_name": "neondb_owner", "pooled": "true"})
        if pooled.status_code == 200:
            doors.add(int(psycopg.conninfo.conninfo_to_dict(pooled.json()["uri"])["port"]))
    assert argon_ports - {env.api_port, env.pg_port, env.http_port} <= doors
    for p in (a, b):
        port = p.compute_port()
        # computes listen on their 0700 unix socket only: no loopback TCP door around
        # the proxy (and its IP allow list) for any local account
        assert [row for row in listeners if row[1] == port] == []
        postmaster = int((p.socket_dir / f".s.PGSQL.{port}.lock").read_text().split()[0])
        assert [row for row in listeners if row[3] == postmaster] == []
        answers = probe("nobody", ("connect", {"host": "127.0.0.1", "port": port,
                                               "user": "cloud_admin", "dbname": "postgres"}))
        assert "Connection refused" in answers[0], answers


def test_other_accounts_cannot_open_sockets_or_read_the_home(
        platform: tuple[ArgonEnv, Project, Project]) -> None:
    env, a, b = platform
    sockets = [str(d / f".s.PGSQL.{port}") for p in (a, b) for d, port in
               ((p.socket_dir, p.compute_port()), (p.pooler_socket_dir, p.pooler_port()))]
    answers = probe("nobody", *(("socket", s) for s in sockets))
    assert all("Permission denied" in x for x in answers), answers
    files = sorted(str(f) for f in env.home.rglob("*") if f.is_file() and not f.is_symlink()
                   and not f.is_socket())
    readable = [os.path.relpath(f, env.home) for f, x in
                zip(files, probe("nobody", *(("read", f) for f in files)), strict=True)
                if x == "ok"]
    assert readable == ["tls/ca.crt"], readable


def test_the_postgres_account_cannot_cross_projects(
        platform: tuple[ArgonEnv, Project, Project]) -> None:
    """A compromised compute of project A (it runs as ``argon``) against project B."""
    _env, a, b = platform
    answers = probe(
        "argon",
        ("connect", b.compute()),                                   # no password
        ("connect", b.compute(password=a.admin_password)),          # A's own password
        ("connect", b.compute(user="neondb_owner", dbname="neondb")),
        ("connect", b.pooler()),                                    # B's PgBouncer
        ("connect", b.pooler(user="cloud_admin", dbname="pgbouncer")),   # admin console
        ("connect", b.pooler(user="cloud_admin", dbname="pgbouncer",
                             password=a.admin_password)),
        ("connect", b.compute(password=b.admin_password)),          # the right one works
        ("connect", b.pooler(password=b.password)),
    )
    assert all(refused(x) for x in answers[:6]), answers
    assert answers[6:] == ["ok", "ok"], answers
    # the auth file PgBouncer logs in with: the Postgres account's alone, 0600
    auth = b.home / "run" / "pgbouncer" / b.endpoint / AUTH_FILE_NAME
    assert oct(auth.stat().st_mode & 0o777) == "0o600"
    assert b.admin_password in auth.read_text()


def test_no_trust_line_in_any_compute(platform: tuple[ArgonEnv, Project, Project]) -> None:
    env, _a, _b = platform
    hbas = list(env.home.glob("timelines/*/pgdata/pg_hba.conf"))
    assert hbas
    for hba in hbas:
        rules = [line.split() for line in hba.read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        assert rules and all(r[-1] == "scram-sha-256" for r in rules), (hba, rules)


def test_clients_still_work_on_every_door(platform: tuple[ArgonEnv, Project, Project]) -> None:
    env, a, _b = platform
    for uri in (a.uri, a.pooled_uri):
        assert "sslmode=require" in uri
        with psycopg.connect(uri, autocommit=True, connect_timeout=60) as conn:
            assert conn.execute("SELECT 40 + 2").fetchone() == (42,)
            assert conn.execute("SELECT current_setting('ssl')").fetchone() is not None
    # a wrong password is refused by the proxy before any compute is asked
    wrong = a.uri.replace(a.password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=60).close()
    # SQL over HTTP, pooled (opt-in) and not
    for pool in ("true", "false"):
        r = httpx.post(f"http://127.0.0.1:{env.http_port}/sql",
                       json={"query": "SELECT current_user AS u"}, timeout=60,
                       headers={"Neon-Connection-String": a.uri, "Neon-Pool-Opt-In": pool})
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [{"u": "neondb_owner"}]
    r = httpx.post(f"http://127.0.0.1:{env.http_port}/sql", json={"query": "SELECT 1"},
                   headers={"Neon-Connection-String": wrong, "Neon-Pool-Opt-In": "true"},
                   timeout=60)
    assert r.status_code in (400, 401, 403), r.text
    # WebSocket (cleartext password over the socket, the password form names the endpoint)
    from websockets.sync.client import connect
    with connect(f"ws://127.0.0.1:{env.http_port}/v2") as ws:
        ws.send(pq.startup_message({"user": "neondb_owner", "database": "neondb"})
                + pq.message(b"p", f"endpoint={a.endpoint};{a.password}".encode() + b"\0")
                + pq.message(b"Q", b"SELECT 6 * 7\0"))
        buf = b""
        while _kinds(buf).count("Z") < 2 and "E" not in _kinds(buf):
            buf += ws.recv(timeout=60)  # type: ignore[operator]
        assert "E" not in _kinds(buf), buf
        assert b"42" in buf


def _kinds(buf: bytes) -> str:
    kinds, i = "", 0
    while i + 5 <= len(buf):
        kind, length = struct.unpack("!ci", buf[i:i + 5])
        if i + 1 + length > len(buf):
            break
        kinds += kind.decode()
        i += 1 + length
    return kinds
