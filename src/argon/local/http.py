"""HTTP on the door's port: ``POST /sql`` (Neon's SQL over HTTP) forwarded to Argon's
``/sql`` with the branch's real connection string, and the WebSocket upgrade that carries
the wire protocol for the serverless driver's ``Pool``/``Client``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from argon.errors import ArgonError, InvalidInput
from argon.local.branches import Upstream
from argon.local.channel import StreamChannel
from argon.local.wire import LOCAL_PASSWORD, LOCAL_USER
from argon.proxy.serverless.sql_over_http import parse_connection_string

logger = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
CORS = {"access-control-allow-origin": "*",
        "access-control-allow-headers": "Authorization, Neon-Connection-String, "
        "Neon-Raw-Text-Output, Neon-Array-Mode, Neon-Pool-Opt-In, Neon-Batch-Read-Only, "
        "Neon-Batch-Isolation-Level, Neon-Batch-Deferrable, Content-Type",
        "access-control-allow-methods": "POST, OPTIONS"}

Target = Callable[[], Awaitable[Upstream]]
ServePg = Callable[["WsChannel"], Awaitable[None]]


class _Buffered:
    def __init__(self, ch: StreamChannel) -> None:
        self.ch, self.buf = ch, bytearray()

    async def until(self, sep: bytes, limit: int) -> bytes | None:
        while (i := self.buf.find(sep)) < 0:
            if len(self.buf) > limit:
                raise InvalidInput("request head too large")
            data = await self.ch.read_some()
            if not data:
                return None
            self.buf += data
        out = bytes(self.buf[:i + len(sep)])
        del self.buf[:i + len(sep)]
        return out

    async def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = await self.ch.read_some()
            if not data:
                raise asyncio.IncompleteReadError(bytes(self.buf), n)
            self.buf += data
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def _respond(ch: StreamChannel, status: int, body: bytes, content_type: str = "application/json",
             extra: dict[str, str] | None = None) -> None:
    reason = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found",
              405: "Method Not Allowed", 502: "Bad Gateway"}.get(status, "Status")
    headers = {**CORS, "content-type": content_type, "content-length": str(len(body)),
               **(extra or {})}
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    ch.write(head.encode() + body)


def _error(ch: StreamChannel, status: int, message: str, code: str = "") -> None:
    _respond(ch, status, json.dumps({"message": message, "code": code}).encode())


async def serve_http(ch: StreamChannel, target: Target, sql_url: str, http: httpx.AsyncClient,
                     serve_pg: ServePg) -> None:
    reader = _Buffered(ch)
    while True:
        head = await reader.until(b"\r\n\r\n", MAX_HEAD)
        if head is None:
            return
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, path, _version = lines[0].split(" ", 2)
        except ValueError:
            _error(ch, 400, "malformed request line")
            return
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if headers.get("upgrade", "").lower() == "websocket":
            await _websocket(ch, head + bytes(reader.buf), serve_pg)
            return
        body = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _chunked(reader)
        elif (n := int(headers.get("content-length", "0") or 0)) > 0:
            if n > MAX_BODY:
                _error(ch, 400, "request body too large")
                return
            body = await reader.exactly(n)
        if method == "OPTIONS":
            _respond(ch, 204, b"")
        elif path.split("?", 1)[0].rstrip("/") != "/sql":
            _error(ch, 404, f"argon local answers POST /sql and WebSocket upgrades, not {path}")
        elif method != "POST":
            _error(ch, 405, "use POST /sql")
        else:
            await _forward_sql(ch, headers, body, target, sql_url, http)
        await ch.drain()
        if headers.get("connection", "").lower() == "close":
            return


async def _chunked(reader: _Buffered) -> bytes:
    out = bytearray()
    while True:
        size_line = await reader.until(b"\r\n", 1024)
        if size_line is None:
            raise asyncio.IncompleteReadError(bytes(out), None)
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.until(b"\r\n", MAX_HEAD)
            return bytes(out)
        out += await reader.exactly(size + 2)
        del out[-2:]
        if len(out) > MAX_BODY:
            raise InvalidInput("request body too large")


async def _forward_sql(ch: StreamChannel, headers: dict[str, str], body: bytes, target: Target,
                       sql_url: str, http: httpx.AsyncClient) -> None:
    try:
        info = parse_connection_string(headers.get("neon-connection-string", ""))
    except InvalidInput as e:
        _error(ch, 400, e.message)
        return
    if info.user != LOCAL_USER or info.password != LOCAL_PASSWORD:
        _error(ch, 400, f'password authentication failed for user "{info.user}"', "28P01")
        return
    try:
        up = await target()
    except ArgonError as e:
        _error(ch, 502, f"argon local: cannot reach Argon: {e.message}", "08006")
        return
    fwd: dict[str, Any] = {k: v for k, v in headers.items() if k.startswith("neon-")}
    fwd["neon-connection-string"] = up.uri(info.dbname)
    fwd["content-type"] = headers.get("content-type", "application/json")
    try:
        resp = await http.post(sql_url, content=body, headers=fwd)
    except httpx.TransportError as e:
        _error(ch, 502, f"argon local: cannot reach Argon's /sql at {sql_url}: "
               f"{e or type(e).__name__}", "08006")
        return
    _respond(ch, resp.status_code, resp.content,
             resp.headers.get("content-type", "application/json"))


class WsChannel:
    """The wire protocol in WebSocket binary frames (websockets' sans-I/O protocol)."""

    def __init__(self, ch: StreamChannel, proto: ServerProtocol) -> None:
        self.ch, self.proto = ch, proto
        self.buf = bytearray()

    def _flush(self) -> None:
        for data in self.proto.data_to_send():
            if data:
                self.ch.write(data)

    async def _fill(self) -> bool:
        data = await self.ch.read_some()
        if not data:
            self.proto.receive_eof()
            return False
        self.proto.receive_data(data)
        for frame in self.proto.events_received():
            if not isinstance(frame, Frame):
                continue
            if frame.opcode in (Opcode.BINARY, Opcode.TEXT, Opcode.CONT):
                self.buf += frame.data
            elif frame.opcode == Opcode.CLOSE:
                self._flush()
                return bool(self.buf)
        self._flush()
        return True

    async def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not await self._fill():
                raise asyncio.IncompleteReadError(bytes(self.buf), n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_some(self) -> bytes:
        while not self.buf:
            if not await self._fill() and not self.buf:
                return b""
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def write(self, data: bytes) -> None:
        self.proto.send_binary(data)
        self._flush()

    async def drain(self) -> None:
        await self.ch.drain()

    def close(self) -> None:
        try:
            self.proto.send_close()
            self._flush()
        except Exception as e:  # noqa: BLE001 - already closing: nothing more to say
            logger.debug("closing a WebSocket: %s", e)
        self.ch.close()


async def _websocket(ch: StreamChannel, request: bytes, serve_pg: ServePg) -> None:
    proto = ServerProtocol(max_size=16 * 1024 * 1024)
    proto.receive_data(request)
    events = proto.events_received()
    if not events:
        _error(ch, 400, "malformed WebSocket upgrade")
        return
    if not isinstance(events[0], Request):
        _error(ch, 400, "malformed WebSocket upgrade")
        return
    response = proto.accept(events[0])
    proto.send_response(response)
    ws = WsChannel(ch, proto)
    ws._flush()
    await ch.drain()
    if response.status_code != 101:
        ch.close()
        return
    await serve_pg(ws)
