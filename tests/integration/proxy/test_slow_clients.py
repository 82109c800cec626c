"""Slow HTTP clients are dropped, and HTTP clients cannot starve Postgres clients of
descriptors (issue 8.7), on a real Argon.

Argon runs with short deadlines (``ARGON_HTTP_*_TIMEOUT`` = 2 s instead of 10/30/10 s)
and a hard descriptor limit of 512 with a soft limit of 256, so the numbers stay small:
``argon start`` raises the soft limit to 512, keeps 256 descriptors for Postgres clients
and Argon itself, and admits at most 128 HTTP connections.
"""

from __future__ import annotations

import resource
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import httpx
import pytest

from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres, make_env
from tests.integration.core.helpers import new_project

DEADLINE = 2.0
SOFT, HARD = 256, 512
HTTP_CAP = 128          # argon.descriptors.DescriptorBudget.for_limit(512)
FLOOD = 600             # more HTTP connections than the whole descriptor limit


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT, HARD))


@pytest.fixture(scope="module")
def env() -> Iterator[ArgonEnv]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FLOOD + 200:
        pytest.skip(f"this test opens {FLOOD} sockets; the hard descriptor limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, FLOOD + 200), hard))
    env = make_env("slow-clients")
    popen = subprocess.Popen

    def limited_popen(*args: Any, **kwargs: Any) -> Any:
        return popen(*args, preexec_fn=_limit_descriptors, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        for name in ("HEADER", "BODY", "HANDSHAKE"):
            mp.setenv(f"ARGON_HTTP_{name}_TIMEOUT", str(DEADLINE))
        mp.setattr(subprocess, "Popen", limited_popen)
        env.start()
    try:
        yield env
    finally:
        env.stop()
        kill_leftover_postgres(env.home)


def _open(port: int, payload: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if payload:
        sock.sendall(payload)
    return sock


def _answer_and_close(sock: socket.socket, wait: float) -> tuple[bytes, float]:
    """What the server sends until it closes the connection, and when it closed."""
    started = time.monotonic()
    sock.settimeout(wait)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        data += b"<still open>"
    finally:
        sock.close()
    return data, time.monotonic() - started


def _ports(env: ArgonEnv) -> dict[str, int]:
    return {"api": env.api_port, "sql": env.http_port, "pg-port-sniffed": env.pg_port}


def test_descriptor_limit_is_raised_at_start(env: ArgonEnv) -> None:
    assert env.proc is not None
    with open(f"/proc/{env.proc.pid}/limits") as f:
        line = next(line for line in f if line.startswith("Max open files"))
    assert line.split()[3:5] == [str(HARD), str(HARD)], line


@pytest.mark.parametrize("door", ["api", "sql", "pg-port-sniffed"])
def test_unfinished_headers_are_dropped(env: ArgonEnv, door: str) -> None:
    path = "/api/v2/projects" if door == "api" else "/sql"
    sock = _open(_ports(env)[door], f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode())
    data, took = _answer_and_close(sock, DEADLINE + 8)
    assert data.startswith(b"HTTP/1.1 408 "), data[:100]
    assert DEADLINE - 0.5 < took < DEADLINE + 3, took


@pytest.mark.parametrize("door", ["api", "sql"])
def test_silent_connection_is_dropped(env: ArgonEnv, door: str) -> None:
    data, took = _answer_and_close(_open(_ports(env)[door]), DEADLINE + 8)
    assert data.startswith(b"HTTP/1.1 408 "), data[:100]
    assert took < DEADLINE + 3, took


@pytest.mark.parametrize("door", ["api", "sql", "pg-port-sniffed"])
def test_unfinished_body_is_dropped(env: ArgonEnv, door: str) -> None:
    path = "/api/v2/projects" if door == "api" else "/sql"
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {env.api_key}\r\n"
            "Content-Type: application/json\r\nNeon-Connection-String: "
            "postgresql://u:p@127.0.0.1/db\r\nContent-Length: 1000\r\n\r\n")
    sock = _open(_ports(env)[door], head.encode() + b'{"query": "SELE')
    data, took = _answer_and_close(sock, DEADLINE + 8)
    assert data.startswith(b"HTTP/1.1 408 "), data[:100]
    assert DEADLINE - 0.5 < took < DEADLINE + 3, took


def _metric(env: ArgonEnv, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{env.api_port}/metrics", timeout=30).text
    values = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith(name + " ") or line.startswith(name + "_total ")]
    assert values, f"{name} missing from /metrics"
    return values[0]


def test_dropped_clients_are_counted_in_metrics(env: ArgonEnv) -> None:
    before = _metric(env, "argon_http_clients_timed_out")
    sock = _open(env.http_port, b"POST /sql HTTP/1.1\r\nHost: x\r\n")
    data, _took = _answer_and_close(sock, DEADLINE + 8)
    assert data.startswith(b"HTTP/1.1 408 "), data[:100]
    assert _metric(env, "argon_http_clients_timed_out") == before + 1
    assert _metric(env, "argon_http_connections_open") >= 1     # this scrape's own


def test_headers_trickled_slowly_do_not_extend_the_deadline(env: ArgonEnv) -> None:
    sock = _open(env.http_port, b"POST /sql HTTP/1.1\r\n")
    started = time.monotonic()
    try:
        for i in range(int(DEADLINE * 4)):
            time.sleep(0.5)
            sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
    except OSError:
        pass   # dropped while we were still sending: what the test wants
    data, _ = _answer_and_close(sock, 5)
    assert data.startswith(b"HTTP/1.1 408 "), data[:100]
    assert time.monotonic() - started < DEADLINE + 4


def test_postgres_clients_connect_while_http_clients_flood(env: ArgonEnv) -> None:
    project = new_project(env, "slow-clients")
    uri = project["connection_uris"][0]["connection_uri"]
    with psycopg.connect(uri, connect_timeout=60) as conn:   # the compute is running
        conn.execute("SELECT 1")
    flood: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            flood.append(_open(env.http_port))
        # every one of them holds a descriptor of Argon's or was refused at once
        with psycopg.connect(uri, connect_timeout=5) as conn:
            assert conn.execute("SELECT 42").fetchone() == (42,)
        # Argon answers the connections past its cap with 503 as it accepts them: give
        # the last of them a moment (well inside the 2 s header deadline)
        settle = time.monotonic() + 1.0
        held, refused = _held_and_refused(flood)
        while refused < FLOOD - HTTP_CAP - 10 and time.monotonic() < settle:
            time.sleep(0.05)
            held, refused = _held_and_refused(flood)
        assert held >= HTTP_CAP - 10, (held, refused)   # the flood was still there
        assert refused >= FLOOD - HTTP_CAP - 10, (held, refused)
    finally:
        for sock in flood:
            sock.close()
    # once the deadline has passed the HTTP side serves again
    time.sleep(DEADLINE + 0.5)
    r = env.api("GET", "/projects")
    assert r.status_code == 200


def _held_and_refused(socks: list[socket.socket]) -> tuple[int, int]:
    held = refused = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            held += 1
            continue
        except OSError:
            refused += 1
            continue
        if data.startswith(b"HTTP/1.1 503 ") or not data:
            refused += 1
    return held, refused


def test_websocket_handshake_deadline() -> None:
    """An upgrade the application does not accept in time is closed (the proxy's own app
    accepts at once, so this uses one that stalls)."""
    import asyncio
    import threading

    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket
    from websockets.sync.client import connect as ws_connect

    from argon.http_guard import HttpGuard, HttpLimits
    from tests.fixtures.common import free_port

    async def stall(ws: WebSocket) -> None:
        await asyncio.sleep(DEADLINE + 1)   # past the deadline, then give up

    guard = HttpGuard(HttpLimits(max_connections=8, handshake_timeout=DEADLINE))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        Starlette(routes=[WebSocketRoute("/v2", stall)]), host="127.0.0.1", port=port,
        log_level="warning", lifespan="off", **guard.protocols()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(Exception, match="408|closed|timed out"):
            with ws_connect(f"ws://127.0.0.1:{port}/v2", open_timeout=DEADLINE + 8):
                pass
        assert time.monotonic() - started < DEADLINE + 3
        assert guard.timed_out == 1
        deadline = time.monotonic() + 5
        while guard.open and time.monotonic() < deadline:   # its slot is given back
            time.sleep(0.05)
        assert guard.open == 0
    finally:
        server.should_exit = True
        thread.join(10)
