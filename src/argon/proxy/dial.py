"""Connections from the proxy to a compute (or its PgBouncer), wherever it listens.

One place opens them, for every path (sessions, early and spare logins, cancels): a unix
socket for a local compute, TCP (with Nagle off: the protocol's small messages must not
wait for an ACK) for one a provider runs elsewhere.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TypeVar

from argon.proxy.backend import ComputeAddress

P = TypeVar("P", bound=asyncio.BaseProtocol)


async def open_compute(address: ComputeAddress, factory: Callable[[], P]) -> P:
    """Connect to ``address`` with a protocol made by ``factory``; OSError on failure."""
    loop = asyncio.get_running_loop()
    if address.is_unix:   # the hot path of local computes: exactly as before
        _, side = await loop.create_unix_connection(factory, address.path)
        return side
    transport, side = await loop.create_connection(factory, address.host, address.port)
    _nodelay(transport)
    return side


async def open_compute_stream(address: ComputeAddress
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A reader/writer pair to ``address`` (short exchanges such as a cancel request)."""
    if address.is_unix:
        return await asyncio.open_unix_connection(address.path)
    reader, writer = await asyncio.open_connection(address.host, address.port)
    _nodelay(writer.transport)
    return reader, writer


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:   # asyncio sets it already; uvloop's pseudo-socket takes it too
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
