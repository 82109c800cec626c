"""A compute that its provider runs on TCP (as a pod would) is reached through the proxy.

The provider here is a real compute provider object wired in-process under the real
``EndpointRuntime``, the real proxy backend (``ControlProxyBackend``) and the real proxy
(``ProxyServer``, its HTTP app for /sql and WebSocket): its ``start()`` starts a real
Postgres and returns ``127.0.0.1:<port>``, where that Postgres asks for SCRAM.  Clients
reach it over the Postgres protocol (and its cancel requests), /sql and a WebSocket;
``inet_server_addr()`` proves each session came over TCP, not the socket the server also
has.  Before the proxy could dial TCP, the wire protocol, cancel and WebSocket paths
failed to connect ("could not connect to endpoint"); /sql, whose pool connects with
libpq, already took a TCP host and is covered here so the whole door stays so.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select
from websockets.sync.client import connect as ws_connect

from argon.compute import ComputeAddress, ComputeProcess, ComputeSpec, ComputeState
from argon.control.context import ControlContext
from argon.control.operations import OperationLog
from argon.control.proxy_backend import ControlProxyBackend
from argon.control.runtime import EndpointRuntime
from argon.control.secretbox import SecretBox
from argon.gateway import Gateway
from argon.meta import tables as t
from argon.meta.db import open_database
from argon.pg import OsUser
from argon.proxy import TlsConfig, pq
from argon.proxy.http import HttpServer, create_http_app, start_http_server
from argon.proxy.serverless.sql_over_http import ScramSqlResolver, SqlOverHttpHandler
from argon.settings import Settings
from tests.fixtures.pgserver import PgServer
from tests.fixtures.proxy import DOMAIN, ProxyEnv

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="Postgres runs as the argon "
                                "account, which needs root to switch to")

ENDPOINT = "ep-tcp-compute-1234"
ROLE, PASSWORD, DB = "alice", "pw-alice-tcp", "appdb"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class TcpComputes:
    """A compute provider whose compute listens on TCP: the real Postgres ``server``,
    started by ``start()``, answered as 127.0.0.1:<port> (never its unix socket)."""

    server: PgServer
    start_timeout: float = 30.0
    starts: int = 0

    def _address(self) -> ComputeAddress | None:
        proc = self.server.proc
        if proc is None or proc.poll() is not None:
            return None
        return ComputeAddress("127.0.0.1", self.server.port)

    def reserve_address(self, spec: ComputeSpec) -> ComputeSpec:
        return spec

    def start(self, spec: ComputeSpec, ready: Callable[[ComputeAddress], None] | None = None
              ) -> ComputeAddress:
        address = self._address()
        if address is None:
            self.starts += 1
            self.server.start()
            address = self._address()
            assert address is not None
        return address

    def stop(self, spec: ComputeSpec, mode: str = "fast") -> None:
        self.server.stop()

    def state(self, spec: ComputeSpec) -> ComputeState:
        return ComputeState.IDLE if self._address() is None else ComputeState.ACTIVE

    def pid(self, spec: ComputeSpec) -> int | None:
        return None if self._address() is None else self.server.proc.pid  # type: ignore[union-attr]

    def process(self, spec: ComputeSpec) -> ComputeProcess | None:
        address = self._address()
        pid = self.pid(spec)
        return None if address is None or pid is None else ComputeProcess(pid, NOW, address)

    def address(self, spec: ComputeSpec) -> ComputeAddress | None:
        return self._address()

    def expected_address(self, spec: ComputeSpec) -> ComputeAddress | None:
        return ComputeAddress("127.0.0.1", self.server.port)

    def connect(self, spec: ComputeSpec, dbname: str = "postgres", user: str | None = None,
                autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(self.server.conninfo(dbname=dbname), autocommit=autocommit)

    def client_sessions(self, spec: ComputeSpec) -> int:
        return 0


class NoStorage:
    """A primary's start tells storage its recovery finished; nothing else is asked
    (the runtime keeps a replica store it never uses here)."""

    def replica_store(self) -> object:
        return object()

    def recovery_finished(self, timeline_id: str) -> None:
        pass


@dataclass
class Roles:
    """Roles' verifiers as the control plane keeps them: in its metadata, not by waking
    the compute (here read from Postgres once, before it is stopped)."""

    verifiers: dict[str, str]

    def verifier(self, endpoint_id: str, role: str) -> str | None:
        return self.verifiers.get(role)


@dataclass
class Platform:
    computes: TcpComputes
    runtime: EndpointRuntime
    proxy: ProxyEnv
    http: HttpServer
    engine: Any = field(repr=False)


@pytest.fixture
def platform(pg_server: PgServer, argon_tmp: Path, proxy_tls: TlsConfig) -> Iterator[Platform]:
    pg_server.create_role(ROLE, PASSWORD)
    with pg_server.connect() as conn:
        conn.execute(f"CREATE DATABASE {DB} OWNER {ROLE}")
        roles = Roles(dict(conn.execute("SELECT rolname, rolpassword FROM pg_authid "
                                        "WHERE rolpassword IS NOT NULL").fetchall()))
    pg_server.stop()                      # suspended: the first client's wake starts it
    home = argon_tmp / "home"
    (home / "secrets").mkdir(parents=True)
    engine = open_database(f"sqlite:///{home / 'meta.db'}")
    computes = TcpComputes(pg_server)
    ctx = ControlContext(settings=Settings(home=home), engine=engine,
                         storage=NoStorage(),  # type: ignore[arg-type]
                         computes=computes, poolers=None,
                         owner=OsUser("me", os.getuid(), os.getgid()),
                         secrets=SecretBox(home / "secrets" / "fernet.key"))
    _endpoint_rows(ctx)
    runtime = EndpointRuntime(ctx, OperationLog(ctx))
    runtime.install_for = lambda _version: pg_server.install  # type: ignore[method-assign]
    services = SimpleNamespace(runtime=runtime, ctx=ctx, roles=roles)
    backend = ControlProxyBackend(services)  # type: ignore[arg-type]
    proxy = ProxyEnv(backend, proxy_tls)  # type: ignore[arg-type]
    # /sql wired as the gateway wires it: the backend's wake, its (host, port)
    gateway = SimpleNamespace(backend=backend)

    async def wake_sql(endpoint_id: str) -> tuple[str, int]:
        return await Gateway._wake_sql(gateway, endpoint_id)  # type: ignore[arg-type]  # noqa: SLF001

    async def endpoint_for(host: str | None, port: int | None, options: str | None) -> str:
        return (host or "").split(".", 1)[0]

    sql = SqlOverHttpHandler(ScramSqlResolver(endpoint_for, backend.role_secret, wake_sql))
    http = proxy.call(start_http_server(create_http_app(proxy.proxy, sql), "127.0.0.1", 0))
    try:
        yield Platform(computes, runtime, proxy, http, engine)
    finally:
        proxy.call(http.stop())
        proxy.call(sql.aclose())
        proxy.close()
        engine.dispose()


def _endpoint_rows(ctx: ControlContext) -> None:
    with ctx.tx() as conn:
        conn.execute(t.projects.insert().values(
            id="p-tcp", name="p", region_id="local", pg_version=18,
            history_retention_seconds=3600, default_endpoint_settings={}, settings={},
            created_at=NOW, updated_at=NOW))
        conn.execute(t.branches.insert().values(
            id="br-tcp", project_id="p-tcp", timeline_id="tl-tcp", name="main",
            state="ready", created_at=NOW, updated_at=NOW))
        conn.execute(t.endpoints.insert().values(
            id=ENDPOINT, project_id="p-tcp", branch_id="br-tcp", type="read_write",
            state="idle", min_cu=0.25, max_cu=0.25, suspend_timeout_seconds=300,
            pg_settings={}, created_at=NOW, updated_at=NOW))


def _dsn(p: Platform) -> str:
    return (f"host={ENDPOINT}.{DOMAIN} hostaddr=127.0.0.1 port={p.proxy.port} user={ROLE} "
            f"password={PASSWORD} dbname={DB} sslmode=require")


def test_wire_protocol_reaches_a_compute_the_provider_runs_on_tcp(platform: Platform) -> None:
    p = platform
    with psycopg.connect(_dsn(p), autocommit=True, connect_timeout=20) as conn:
        assert conn.execute("SELECT host(inet_server_addr()), inet_server_port()"
                            ).fetchone() == ("127.0.0.1", p.computes.server.port)
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1), (2)")
    assert p.computes.starts == 1
    # the address start() returned is what the metadata records
    with p.engine.connect() as mconn:
        row = mconn.execute(select(t.endpoints.c.state, t.endpoints.c.compute_host,
                                   t.endpoints.c.compute_port)
                            .where(t.endpoints.c.id == ENDPOINT)).one()
    assert tuple(row) == ("active", "127.0.0.1", p.computes.server.port)
    # a second session on the running compute: served from the cached route (an early
    # connection opened before authentication) over TCP as well, no second start
    for _ in range(3):
        with psycopg.connect(_dsn(p), autocommit=True, connect_timeout=20) as conn:
            assert conn.execute("SELECT sum(x) FROM t").fetchone() == (3,)
    assert p.computes.starts == 1
    assert p.proxy.proxy.metrics.early_connections >= 1


def test_a_cancel_request_reaches_a_tcp_compute(platform: Platform) -> None:
    p = platform
    with psycopg.connect(_dsn(p), autocommit=True, connect_timeout=20) as conn:
        # cancel_safe: libpq's blocking PQcancel would hold the GIL the in-process proxy
        # needs to answer it
        timer = threading.Timer(0.5, conn.cancel_safe)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 10
        timer.join()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_sql_over_http_reaches_a_tcp_compute(platform: Platform) -> None:
    p = platform
    conn_string = f"postgresql://{ROLE}:{PASSWORD}@{ENDPOINT}.{DOMAIN}/{DB}?sslmode=require"
    r = httpx.post(f"http://127.0.0.1:{p.http.port}/sql", timeout=30,
                   headers={"Neon-Connection-String": conn_string},
                   json={"query": "SELECT host(inet_server_addr()) AS addr, "
                                  "inet_server_port() AS port, current_user AS who",
                         "params": []})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [{"addr": "127.0.0.1", "port": p.computes.server.port,
                                 "who": ROLE}]
    assert p.computes.starts == 1


def test_a_websocket_session_reaches_a_tcp_compute(platform: Platform) -> None:
    p = platform
    url = f"ws://127.0.0.1:{p.http.port}/v2?address={ENDPOINT}.{DOMAIN}:5432"
    startup = pq.startup_message({"user": ROLE, "database": DB})
    password = pq.message(b"p", PASSWORD.encode() + b"\x00")
    query = pq.message(b"Q", b"SELECT host(inet_server_addr())\x00")
    with ws_connect(url) as ws:
        ws.send(startup + password + query)
        buf = b""
        messages: list[tuple[bytes, bytes]] = []
        while sum(kind == b"Z" for kind, _ in messages) < 2 and not any(
                kind == b"E" for kind, _ in messages):
            frame = ws.recv(timeout=30)
            assert isinstance(frame, bytes)
            buf += frame
            while len(buf) >= 5:
                kind, length = struct.unpack("!ci", buf[:5])
                if len(buf) < 1 + length:
                    break
                messages.append((kind, buf[5:1 + length]))
                buf = buf[1 + length:]
    assert not any(kind == b"E" for kind, _ in messages), messages
    rows = [body for kind, body in messages if kind == b"D"]
    assert rows == [struct.pack("!hi", 1, 9) + b"127.0.0.1"]
