"""The proxy's SCRAM client logs into a real Postgres with a ClientKey, never a password.

Driven over a plain blocking unix socket, as the proxy does over its asyncio one.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import replace

import pytest
from psycopg import sql

from argon.compute import ComputeManager, ComputeSpec
from argon.pg.scram import ScramVerifier, make_verifier
from argon.proxy import pq
from argon.proxy.auth.scram_client import ScramClient, ScramKeys, client_key_from_password
from argon.proxy.errors import ProxyError
from tests.fixtures.compute import place

PASSWORD = "carol-secret-pw"


def _read(sock: socket.socket) -> tuple[bytes, bytes]:
    head = b""
    while len(head) < 5:
        chunk = sock.recv(5 - len(head))
        assert chunk, "server closed the connection"
        head += chunk
    kind, length = struct.unpack("!ci", head)
    body = b""
    while len(body) < length - 4:
        body += sock.recv(length - 4 - len(body))
    return kind, body


def login(spec: ComputeSpec, port: int, keys: ScramKeys) -> list[bytes]:
    """Startup as carol, SCRAM with ``keys``; the message kinds up to ReadyForQuery."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(place(spec).socket_dir / f".s.PGSQL.{port}"))
        sock.sendall(pq.startup_message({"user": "carol", "database": "postgres"}))
        kind, body = _read(sock)
        assert kind == b"R" and pq.int32(body) == pq.AUTH_SASL
        client = ScramClient(keys)
        sock.sendall(pq.message(b"p", client.initial(
            [m.decode() for m in body[4:].split(b"\0") if m])))
        kind, body = _read(sock)
        assert (kind, pq.int32(body)) == (b"R", pq.AUTH_SASL_CONTINUE)
        sock.sendall(pq.message(b"p", client.continue_(body[4:])))
        kind, body = _read(sock)
        if kind == b"E":
            raise PermissionError(pq.parse_error_fields(body).get("M"))
        assert (kind, pq.int32(body)) == (b"R", pq.AUTH_SASL_FINAL)
        client.final(body[4:])
        kinds = []
        while True:
            kind, body = _read(sock)
            kinds.append(kind)
            if kind == b"Z":
                return kinds


@pytest.fixture
def carol(make_compute_spec: Callable[..., ComputeSpec],
          compute_manager: ComputeManager) -> tuple[ComputeSpec, int, ScramVerifier]:
    spec = make_compute_spec()
    proc = compute_manager.start_process(spec)
    verifier = make_verifier(PASSWORD)
    with compute_manager.connect(spec) as conn:   # set as a verifier, as Argon does
        conn.execute(sql.SQL("CREATE ROLE carol LOGIN PASSWORD {}").format(
            sql.Literal(str(verifier))))
    return spec, proc.port, verifier


def test_logs_in_with_the_client_key(carol: tuple[ComputeSpec, int, ScramVerifier]) -> None:
    spec, port, verifier = carol
    keys = ScramKeys(client_key_from_password(PASSWORD, verifier), verifier)
    kinds = login(spec, port, keys)
    assert kinds[0] == b"R" and kinds[-1] == b"Z"      # AuthenticationOk ... ReadyForQuery


def test_a_wrong_key_is_refused_by_postgres(carol: tuple[ComputeSpec, int, ScramVerifier]
                                            ) -> None:
    spec, port, verifier = carol
    keys = ScramKeys(client_key_from_password("not-carols", verifier), verifier)
    with pytest.raises(PermissionError, match="password authentication failed"):
        login(spec, port, keys)


def test_a_server_without_the_server_key_is_caught(
        carol: tuple[ComputeSpec, int, ScramVerifier]) -> None:
    """The proof is right but the ServerKey we hold is not the server's: a fake server."""
    spec, port, verifier = carol
    wrong = replace(verifier, server_key=b"\0" * 32)
    keys = ScramKeys(client_key_from_password(PASSWORD, verifier), wrong)
    with pytest.raises(ProxyError, match="signature is wrong"):
        login(spec, port, keys)


def test_a_different_salt_stops_before_any_proof(
        carol: tuple[ComputeSpec, int, ScramVerifier]) -> None:
    spec, port, _verifier = carol
    other = make_verifier(PASSWORD)          # same password, another salt than pg_authid's
    keys = ScramKeys(client_key_from_password(PASSWORD, other), other)
    with pytest.raises(ProxyError, match="differs from the one Argon knows"):
        login(spec, port, keys)
