"""The Postgres wire protocol over WebSocket binary frames (Neon's serverless driver).

``WsChannel`` gives a Starlette WebSocket the same face as a TCP client side, so the
ordinary ``Session`` runs on it: the endpoint comes from the Host header or ``?address=``
(or the password form), and authentication is by cleartext password, as Neon does.
Flow control: frames are read from the socket only while the compute accepts writes,
and the compute is paused while too many bytes wait to be sent to the browser/driver.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from starlette.websockets import WebSocket, WebSocketDisconnect

from argon.proxy import pq
from argon.proxy.errors import ErrorKind, ProxyError, protocol_error
from argon.proxy.relay import MAX_HANDSHAKE_BUFFER, Peer

logger = logging.getLogger(__name__)

SEND_HIGH_WATER = 256 * 1024
SEND_LOW_WATER = 64 * 1024
MAX_FRAME = 16 * 1024 * 1024


class WsChannel:
    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.buf = bytearray()
        self.closed = False
        self.bytes_in = 0
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = loop.create_future()
        self.peer: Peer | None = None
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._can_read = asyncio.Event()
        self._can_read.set()
        self._peer_paused = False
        self._tasks = [asyncio.create_task(self._send_loop())]

    # -- handshake -----------------------------------------------------------------------
    async def _recv(self) -> bytes | None:
        try:
            msg = await self.ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            self._mark_closed()
            return None
        if msg["type"] == "websocket.disconnect":
            self._mark_closed()
            return None
        data = msg.get("bytes")
        if data is None:
            data = (msg.get("text") or "").encode()
        self.bytes_in += len(data)
        return bytes(data)

    async def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = None if self.closed else await self._recv()
            if data is None:
                raise ProxyError(ErrorKind.CLIENT_DISCONNECT, "client closed the connection",
                                 sqlstate="08006")
            self.buf += data
            if len(self.buf) > MAX_HANDSHAKE_BUFFER:
                raise protocol_error("too much data before authentication")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_message(self, max_len: int) -> tuple[bytes, bytes]:
        return await pq.read_message(self.read_exact, max_len)

    # -- writing (also the Peer face the compute side writes to) --------------------------
    def write(self, data: bytes) -> None:
        if self.closed:
            return
        self._queue.append(data)
        self._queued += len(data)
        self._wakeup.set()
        if self._queued > SEND_HIGH_WATER and self.peer is not None and not self._peer_paused:
            self._peer_paused = True
            self.peer.pause_reading()

    async def _send_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                chunk = b"".join(self._queue)
                self._queue.clear()
                self._queued = 0
                try:
                    await self.ws.send_bytes(chunk)
                except Exception:   # the client went away mid-send
                    self._mark_closed()
                    return
                if self._peer_paused and self._queued < SEND_LOW_WATER and self.peer:
                    self._peer_paused = False
                    self.peer.resume_reading()
            if self.closed:
                return

    def pause_reading(self) -> None:
        self._can_read.clear()

    def resume_reading(self) -> None:
        self._can_read.set()

    def as_peer(self) -> Peer:
        return self

    # -- relay ---------------------------------------------------------------------------
    def start_relay(self, peer: Peer) -> None:
        self.peer = peer
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            peer.write(data)
        self._tasks.append(asyncio.create_task(self._recv_loop(peer)))

    async def _recv_loop(self, peer: Peer) -> None:
        while not self.closed:
            await self._can_read.wait()
            data = await self._recv()
            if data is None:
                break
            peer.write(data)
        peer.close()

    # -- closing -------------------------------------------------------------------------
    def _mark_closed(self) -> None:
        if not self.closed:
            self.closed = True
            self._wakeup.set()
            if self.peer is not None:
                self.peer.close()
        if not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        """Close after pending frames are sent (the error message, the last results)."""
        if self.closed:
            return
        self.closed = True
        self._wakeup.set()
        if not self.done.done():
            self.done.set_result(None)

    async def finish(self) -> None:
        """Wait for the sender to flush, then close the WebSocket."""
        self.close()
        sender = self._tasks[0]
        try:
            await asyncio.wait_for(sender, 5)
        except (TimeoutError, asyncio.CancelledError):
            pass
        for t in self._tasks[1:]:
            t.cancel()
        try:
            await self.ws.close()
        except Exception:   # already closed by the client
            pass
