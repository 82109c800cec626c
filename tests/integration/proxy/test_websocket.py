"""The WebSocket path with Python's ``websockets`` client speaking the wire protocol,
and the HTTP app's /sql delegation."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from websockets.sync.client import connect

from argon.proxy import pq
from argon.proxy.http import HttpServer, create_http_app, start_http_server
from tests.fixtures.pgserver import PgServer
from tests.fixtures.proxy import DOMAIN, ProxyEnv


async def _sql_handler(request: Request) -> Response:
    return JSONResponse({"handled": request.method})


@pytest.fixture
def http(proxy_env: ProxyEnv, pg_server: PgServer) -> Iterator[HttpServer]:
    pg_server.create_role("dave", "pw-dave")
    app = create_http_app(proxy_env.proxy, _sql_handler)
    server = proxy_env.call(start_http_server(app, "127.0.0.1", 0))
    try:
        yield server
    finally:
        proxy_env.call(server.stop())


class WireReader:
    """Reassembles backend messages from WebSocket frames."""

    def __init__(self, ws: object) -> None:
        self.ws = ws
        self.buf = b""

    def next(self) -> tuple[bytes, bytes]:
        while True:
            if len(self.buf) >= 5:
                kind, length = struct.unpack("!ci", self.buf[:5])
                if len(self.buf) >= 1 + length:
                    body = self.buf[5:1 + length]
                    self.buf = self.buf[1 + length:]
                    return kind, body
            frame = self.ws.recv(timeout=15)  # type: ignore[attr-defined]
            assert isinstance(frame, bytes)
            self.buf += frame

    def until(self, kind: bytes) -> list[tuple[bytes, bytes]]:
        out = []
        while True:
            msg = self.next()
            out.append(msg)
            if msg[0] == kind or msg[0] == b"E":
                return out


def _startup(user: str = "dave") -> bytes:
    return pq.startup_message({"user": user, "database": "postgres"})


def _password(pw: str) -> bytes:
    return pq.message(b"p", pw.encode() + b"\x00")


def _query(sql: str) -> bytes:
    return pq.message(b"Q", sql.encode() + b"\x00")


@pytest.mark.parametrize("path", ["/v2", "/v1", "/anything"], ids=["v2", "v1", "any"])
def test_websocket_startup_password_query(http: HttpServer, path: str) -> None:
    url = f"ws://127.0.0.1:{http.port}{path}?address=ep-one.{DOMAIN}:5432"
    with connect(url) as ws:
        r = WireReader(ws)
        ws.send(_startup())
        kind, body = r.next()
        assert (kind, pq.int32(body)) == (b"R", pq.AUTH_CLEARTEXT)
        ws.send(_password("pw-dave"))
        msgs = r.until(b"Z")
        assert (b"R", struct.pack("!i", 0)) in msgs
        assert any(k == b"K" for k, _ in msgs)
        ws.send(_query("SELECT 40 + 2 AS answer"))
        msgs = r.until(b"Z")
        rows = [b for k, b in msgs if k == b"D"]
        assert rows == [struct.pack("!hi", 1, 2) + b"42"]


def test_websocket_pipelined_like_the_driver(http: HttpServer) -> None:
    # @neondatabase/serverless sends startup, password and the first query at once.
    url = f"ws://127.0.0.1:{http.port}/v2?address=ep-one.{DOMAIN}:5432"
    with connect(url) as ws:
        ws.send(_startup() + _password("pw-dave") + _query("SELECT current_user"))
        r = WireReader(ws)
        r.until(b"Z")               # end of startup
        msgs = r.until(b"Z")        # the query
        assert [b for k, b in msgs if k == b"D"] == [struct.pack("!hi", 1, 4) + b"dave"]
        ws.send(_query("BEGIN; CREATE TEMP TABLE w (x int); INSERT INTO w VALUES (1);"
                       "COMMIT; SELECT count(*) FROM w"))
        msgs = r.until(b"Z")
        assert [b for k, b in msgs if k == b"D"] == [struct.pack("!hi", 1, 1) + b"1"]


def test_websocket_password_form_and_wrong_password(http: HttpServer) -> None:
    url = f"ws://127.0.0.1:{http.port}/v2"     # Host is 127.0.0.1: no endpoint there
    with connect(url) as ws:
        ws.send(_startup() + _password("endpoint=ep-one;pw-dave") + _query("SELECT 1"))
        r = WireReader(ws)
        r.until(b"Z")
        assert [b for k, b in r.until(b"Z") if k == b"D"] == [struct.pack("!hi", 1, 1) + b"1"]
    with connect(url + f"?address=ep-one.{DOMAIN}:5432") as ws:
        ws.send(_startup() + _password("wrong"))
        r = WireReader(ws)
        kind, body = r.until(b"Z")[-1]
        assert kind == b"E"
        assert pq.parse_error_fields(body)["C"] == "28P01"


def test_websocket_garbage_then_others_still_work(http: HttpServer) -> None:
    url = f"ws://127.0.0.1:{http.port}/v2?address=ep-one.{DOMAIN}:5432"
    with connect(url) as ws:
        ws.send(b"\xff" * 64)
        frame = ws.recv(timeout=15)
        assert isinstance(frame, bytes) and frame.startswith(b"E")
    test_websocket_startup_password_query(http, "/v2")


def test_sql_route_is_delegated(http: HttpServer) -> None:
    resp = httpx.post(f"http://127.0.0.1:{http.port}/sql", json={"query": "SELECT 1"})
    assert resp.json() == {"handled": "POST"}
    assert httpx.options(f"http://127.0.0.1:{http.port}/sql").json() == {"handled": "OPTIONS"}


def test_http_and_websocket_on_the_postgres_port(proxy_env: ProxyEnv, pg_server: PgServer) -> None:
    from argon.proxy.http import attach_sniffing
    pg_server.create_role("dave", "pw-dave")
    attach_sniffing(proxy_env.proxy, create_http_app(proxy_env.proxy, _sql_handler))
    port = proxy_env.port
    assert httpx.post(f"http://127.0.0.1:{port}/sql", json={}).json() == {"handled": "POST"}
    with connect(f"ws://127.0.0.1:{port}/v2?address=ep-one.{DOMAIN}:5432") as ws:
        ws.send(_startup() + _password("pw-dave") + _query("SELECT 1"))
        r = WireReader(ws)
        r.until(b"Z")
        assert [b for k, b in r.until(b"Z") if k == b"D"] == [struct.pack("!hi", 1, 1) + b"1"]
    import psycopg
    with psycopg.connect(f"host=127.0.0.1 port={port} user=dave password=pw-dave "
                         "dbname=postgres sslmode=require options=endpoint=ep-one") as conn:
        assert conn.execute("SELECT 2").fetchone() == (2,)
