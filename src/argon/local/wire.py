"""The Postgres wire protocol through the door: the client's side (fixed ``neon``/``npg``
credentials, optional TLS) and the door's own login to Argon's proxy (TLS + SCRAM as
the branch's owner), then bytes relayed both ways."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import ssl
import struct
from dataclasses import dataclass
from pathlib import Path

from argon.local.branches import Upstream
from argon.local.channel import Channel, StreamChannel
from argon.pg.scram import ScramVerifier, make_verifier, salted_password
from argon.proxy import pq
from argon.proxy.auth.scram import SCRAM, ScramServer
from argon.proxy.auth.scram_client import ScramClient
from argon.proxy.errors import ErrorKind, ProxyError, auth_failed, protocol_error

logger = logging.getLogger(__name__)

LOCAL_USER, LOCAL_PASSWORD = "neon", "npg"
MAX_STARTUP_MESSAGE = 1 << 20
UPSTREAM_CONNECT_TIMEOUT = 60.0
# libpq-only or door-owned keys that must not reach Argon's proxy as startup parameters
_DROPPED = {"user", "database", "options", "password"}

_LOCAL_VERIFIER = make_verifier(LOCAL_PASSWORD)


class UpstreamRefused(Exception):
    """Argon (i.e. Postgres behind it) answered the login with this ErrorResponse body."""

    def __init__(self, body: bytes) -> None:
        super().__init__(pq.parse_error_fields(body).get("M", "refused"))
        self.body = body


def unreachable(detail: str) -> ProxyError:
    return ProxyError(ErrorKind.COMPUTE, f"argon local: cannot reach Argon: {detail}",
                      sqlstate="08006", retryable=True)


@dataclass
class Startup:
    params: dict[str, str]

    @property
    def user(self) -> str:
        return self.params.get("user", "")

    @property
    def database(self) -> str:
        return self.params.get("database") or self.user


async def client_startup(ch: Channel, tls: ssl.SSLContext | None) -> Startup | pq.CancelRequest:
    """SSLRequest/GSSENCRequest answered, then the StartupMessage (or a CancelRequest)."""
    while True:
        header = await ch.read_exact(4)
        length = pq.startup_length(header)
        packet = pq.parse_startup(header + await ch.read_exact(length - 4))
        if isinstance(packet, pq.SslRequest):
            if tls is not None and isinstance(ch, StreamChannel) and not ch.tls:
                ch.write(b"S")
                await ch.drain()
                await ch.start_tls(tls)
            else:
                ch.write(b"N")
            continue
        if isinstance(packet, pq.GssEncRequest):
            ch.write(b"N")
            continue
        if isinstance(packet, pq.CancelRequest):
            return packet
        return Startup(dict(packet.params))


async def _read_client(ch: Channel) -> tuple[bytes, bytes]:
    return await pq.read_message(ch.read_exact, pq.MAX_AUTH_MESSAGE_LEN)


async def authenticate_client(ch: Channel, startup: Startup, *, cleartext: bool) -> None:
    """``neon``/``npg`` only: SCRAM on TCP, a cleartext password on the WebSocket (the
    serverless driver pipelines it, as Neon's proxy expects). 28P01 otherwise."""
    if cleartext:
        ch.write(pq.auth(pq.AUTH_CLEARTEXT))
        await ch.drain()
        kind, body = await _read_client(ch)
        if kind != b"p":
            raise protocol_error("expected a password message")
        ok = hmac.compare_digest(pq.parse_password(body).encode(), LOCAL_PASSWORD.encode())
        if not ok or startup.user != LOCAL_USER:
            raise auth_failed(startup.user)
        return
    scram = ScramServer(startup.user, _LOCAL_VERIFIER if startup.user == LOCAL_USER else None,
                        None)
    ch.write(pq.auth_sasl([SCRAM]))
    await ch.drain()
    kind, body = await _read_client(ch)
    if kind != b"p":
        raise protocol_error("expected SASL response")
    mech, data = pq.parse_sasl_initial(body)
    ch.write(pq.auth(pq.AUTH_SASL_CONTINUE, scram.client_first(mech, data)))
    await ch.drain()
    kind, body = await _read_client(ch)
    if kind != b"p":
        raise protocol_error("expected SASL response")
    ch.write(pq.auth(pq.AUTH_SASL_FINAL, scram.client_final(body)))


def upstream_tls(up: Upstream, ca_file: Path | None) -> ssl.SSLContext:
    """The door checks Argon's certificate when it knows the CA (a local Argon) or the
    connection string asks for verification; otherwise it encrypts as sslmode=require."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if ca_file is None and not up.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["postgresql"])
    return ctx


def _scram_keys(password: str, server_first: bytes) -> tuple[bytes, ScramVerifier]:
    attrs = dict(a.split("=", 1) for a in server_first.decode("ascii").split(","))
    salt, iterations = base64.b64decode(attrs["s"]), int(attrs["i"])
    salted = salted_password(password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return client_key, ScramVerifier(iterations, salt, hashlib.sha256(client_key).digest(),
                                     server_key)


async def open_upstream(up: Upstream, startup: Startup, ca_file: Path | None
                        ) -> tuple[StreamChannel, list[bytes]]:
    """Log into Argon's proxy as the branch owner; the messages after AuthenticationOk
    (ParameterStatus, BackendKeyData, ReadyForQuery) come back for the client."""
    try:
        async with asyncio.timeout(UPSTREAM_CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection(up.host, up.port)
            ch = StreamChannel(reader, writer)
            ch.write(struct.pack("!ii", 8, pq.SSL_REQUEST_CODE))
            if await ch.read_exact(1) != b"S":
                ch.close()
                raise unreachable(f"{up.host}:{up.port} refused TLS")
            await ch.start_tls(upstream_tls(up, ca_file), server_hostname=up.host)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as e:
        raise unreachable(f"{up.host}:{up.port}: {e or type(e).__name__}") from None
    params = {k: v for k, v in startup.params.items() if k not in _DROPPED}
    options = f"endpoint={up.endpoint_id} {startup.params.get('options', '')}".strip()
    params.update(user=up.role, database=startup.database, options=options)
    ch.write(pq.startup_message(params))
    await ch.drain()
    after_auth: list[bytes] = []
    scram: ScramClient | None = None
    try:
        while True:
            kind, body = await pq.read_message(ch.read_exact, MAX_STARTUP_MESSAGE)
            if kind == b"E":
                raise UpstreamRefused(body)
            if kind == b"R":
                code = pq.int32(body)
                if code == pq.AUTH_SASL:
                    scram = ScramClient(None)
                    offered = [m.decode() for m in body[4:].split(b"\0") if m]
                    ch.write(pq.message(b"p", scram.initial(offered)))
                elif code == pq.AUTH_SASL_CONTINUE and scram is not None:
                    client_key, verifier = _scram_keys(up.password, body[4:])
                    scram.server_first(body[4:], verifier)
                    ch.write(pq.message(b"p", scram.proof(client_key)))
                elif code == pq.AUTH_SASL_FINAL and scram is not None:
                    scram.final(body[4:])
                elif code == pq.AUTH_CLEARTEXT:
                    ch.write(pq.message(b"p", up.password.encode() + b"\0"))
                elif code != pq.AUTH_OK:
                    raise unreachable(f"Argon asked for authentication type {code}")
                await ch.drain()
                continue
            after_auth.append(pq.message(kind, body))
            if kind == b"Z":
                return ch, after_auth
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as e:
        ch.close()
        raise unreachable(f"connection lost during login: {e or type(e).__name__}") from None
    except BaseException:
        ch.close()
        raise


async def relay(a: Channel, b: Channel) -> None:
    """Copy bytes both ways until either side ends; both are closed then."""

    async def pump(src: Channel, dst: Channel) -> None:
        try:
            while data := await src.read_some():
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, ConnectionError):
            pass

    tasks = [asyncio.create_task(pump(a, b)), asyncio.create_task(pump(b, a))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        a.close()
        b.close()


async def forward_cancel(up: Upstream, cancel: pq.CancelRequest, ca_file: Path | None
                         ) -> None:
    """A CancelRequest goes to Argon's proxy over TLS, as libpq sends one."""
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection(up.host, up.port)
            ch = StreamChannel(reader, writer)
            ch.write(struct.pack("!ii", 8, pq.SSL_REQUEST_CODE))
            if await ch.read_exact(1) == b"S":
                await ch.start_tls(upstream_tls(up, ca_file), server_hostname=up.host)
            ch.write(pq.cancel_request(cancel.pid, cancel.key))
            await ch.drain()
            ch.close()
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as e:
        logger.info("cancel request not forwarded: %s", e)
