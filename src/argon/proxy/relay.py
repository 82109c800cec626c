"""One side of a proxied connection as an asyncio Protocol: first a small buffered reader
for the handshake, then a byte relay to its peer with explicit flow control.

In relay mode, bytes go straight from ``data_received`` to the peer's ``write``; when our
transport's write buffer fills (``pause_writing``) we stop reading the peer, and resume
when it drains, so a slow side never makes the proxy buffer without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from argon.proxy import pq
from argon.proxy.errors import ErrorKind, ProxyError

logger = logging.getLogger(__name__)

# Bound on what a side may send before the proxy has read it during the handshake.
MAX_HANDSHAKE_BUFFER = 64 * 1024


class Peer(Protocol):
    """What a relay writes to: a transport, or an adapter around a WebSocket."""

    def write(self, data: bytes) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...


class PgSide(asyncio.Protocol):
    __slots__ = ("transport", "buf", "waiter", "peer", "closed", "done", "bytes_in", "name",
                 "_paused_peer", "_peer_write")

    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.peer: Peer | None = None
        self.closed = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.bytes_in = 0
        self._paused_peer = False
        self._peer_write: Callable[[bytes], object] | None = None

    # -- asyncio callbacks ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio's
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        write = self._peer_write
        if write is not None:   # the hot path: one call straight into the peer's transport
            write(data)
            return
        self.buf += data
        if len(self.buf) > MAX_HANDSHAKE_BUFFER:
            logger.info("%s sent %d bytes during the handshake; closing", self.name,
                        len(self.buf))
            self.buf.clear()
            if self.transport is not None:
                self.transport.abort()
        self._wake()

    def eof_received(self) -> bool:
        return False  # close our side; connection_lost closes the peer

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()
        if self.peer is not None:
            self.peer.close()
        if not self.done.done():
            self.done.set_result(None)

    def pause_writing(self) -> None:
        if self.peer is not None and not self._paused_peer:
            self._paused_peer = True
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self._paused_peer:
            self._paused_peer = False
            self.peer.resume_reading()

    # -- handshake reading ---------------------------------------------------------------
    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.closed:
                raise ProxyError(ErrorKind.CLIENT_DISCONNECT, f"{self.name} closed the "
                                 "connection", sqlstate="08006")
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_message(self, max_len: int) -> tuple[bytes, bytes]:
        """One typed message (type, body) of at most ``max_len`` bytes."""
        buf = self.buf
        if len(buf) >= 5:   # the usual case: already here whole, so no waiting at all
            length = int.from_bytes(buf[1:5], "big")
            if 4 <= length <= max_len and len(buf) > length:
                kind, body = bytes(buf[:1]), bytes(buf[5:1 + length])
                del buf[:1 + length]
                return kind, body
        return await pq.read_message(self.read_exact, max_len)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once, without flushing or a TLS close_notify."""
        if self.transport is not None:
            self.transport.abort()

    # -- relay ---------------------------------------------------------------------------
    def as_peer(self) -> Peer:
        assert self.transport is not None
        return TransportPeer(self.transport)

    def start_relay(self, peer: Peer,
                    watch: Callable[[bytes], bytes] | None = None) -> None:
        """From now on, everything this side sends goes to ``peer`` unparsed (through
        ``watch`` first, which returns what to forward: ``argon.proxy.reuse``)."""
        self.peer = peer
        write = peer.transport.write if isinstance(peer, TransportPeer) else peer.write
        if watch is None:
            self._peer_write = write
        else:
            def watched(data: bytes) -> None:
                data = watch(data)
                if data:
                    write(data)
            self._peer_write = watched
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            self._peer_write(data)
        if self.closed:
            peer.close()

    def unwatch(self) -> None:
        """Relay straight to the peer again (the watch gave up)."""
        if self.peer is not None:
            peer = self.peer
            self._peer_write = (peer.transport.write if isinstance(peer, TransportPeer)
                                else peer.write)

    def detach(self) -> bool:
        """Leave relay mode without closing the peer; False if this side cannot be kept
        (closed, or bytes waiting in either direction)."""
        self.peer = None
        self._peer_write = None
        return not (self.closed or self.buf or self.transport is None
                    or self.transport.get_write_buffer_size())

    @property
    def pausing_peer(self) -> bool:
        """Whether this side's full write buffer has paused its peer's reading."""
        return self._paused_peer


class TransportPeer:
    """A plain transport as a relay peer (pausing a closing transport is harmless)."""

    __slots__ = ("transport",)

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_reading(self) -> None:
        if not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def close(self) -> None:
        self.transport.close()
