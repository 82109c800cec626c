"""A byte stream with one face for the door's three ways in (TCP, TLS, WebSocket)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Protocol

READ_CHUNK = 64 * 1024


class Channel(Protocol):
    async def read_exact(self, n: int) -> bytes: ...
    async def read_some(self) -> bytes: ...          # b"" at end of stream
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def close(self) -> None: ...


class StreamChannel:
    """asyncio streams; ``start_tls`` upgrades in place after an SSLRequest."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 prefix: bytes = b"") -> None:
        self.reader, self.writer = reader, writer
        self._prefix = prefix       # bytes read to sniff the protocol, given back first
        self.tls = False

    async def read_exact(self, n: int) -> bytes:
        head, self._prefix = self._prefix[:n], self._prefix[n:]
        if len(head) == n:
            return head
        return head + await self.reader.readexactly(n - len(head))

    async def read_some(self) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return await self.reader.read(READ_CHUNK)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    async def start_tls(self, ctx: ssl.SSLContext, server_hostname: str | None = None
                        ) -> None:
        await self.writer.start_tls(ctx, server_hostname=server_hostname)
        self.tls = True

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
