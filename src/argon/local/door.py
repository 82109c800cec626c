"""The door itself: one port, the protocol sniffed from the first bytes (a Postgres
startup packet begins with its length, HTTP with a method name), and the lifecycle:
pick or make the branch, serve, and on SIGINT/SIGTERM delete the ephemeral branch."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from argon.errors import ArgonError
from argon.local.branches import BranchSelector, Upstream
from argon.local.channel import Channel, StreamChannel
from argon.local.follow import OpenSession, Sessions, backend_pid, follow_head
from argon.local.http import WsChannel, serve_http
from argon.local.wire import (
    UpstreamRefused,
    authenticate_client,
    client_startup,
    forward_cancel,
    open_upstream,
    relay,
    unreachable,
)
from argon.proxy import pq
from argon.proxy.errors import ProxyError

logger = logging.getLogger(__name__)

DEFAULT_PORT = 5432
HANDSHAKE_TIMEOUT = 120.0   # includes creating a git branch's database branch


@dataclass(frozen=True)
class DoorOptions:
    host: str
    port: int
    sql_url: str               # Argon's POST /sql
    ca_file: Path | None       # Argon's CA, to check the proxy's certificate


def listen_addresses(host: str) -> list[str]:
    """``localhost`` is both loopback addresses: clients that resolve it to ::1 first
    (asyncpg, Node) must reach the door, not whatever else holds ::1:<port>."""
    if host != "localhost":
        return [host]
    addresses = ["127.0.0.1"]
    if socket.has_ipv6:
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
            addresses.append("::1")
        except OSError:
            pass   # no IPv6 loopback on this host
    return addresses


def port_is_free(host: str, port: int) -> bool:
    for address in listen_addresses(host):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((address, port))
            except OSError:
                return False
    return True


class Door:
    def __init__(self, selector: BranchSelector, options: DoorOptions,
                 tls: ssl.SSLContext | None) -> None:
        self.selector, self.options, self.tls = selector, options, tls
        self.http = httpx.AsyncClient(timeout=300)
        self._tasks: set[asyncio.Task[None]] = set()
        self.sessions = Sessions()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            first = await reader.readexactly(4)
            ch = StreamChannel(reader, writer, prefix=first)
            if first[:1].isalpha():
                await serve_http(ch, self.selector.target, self.options.sql_url, self.http,
                                 self._serve_ws)
            else:
                await self.serve_pg(ch, cleartext=False)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
            pass
        except ArgonError as e:
            logger.info("request refused: %s", e.message)
        finally:
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _serve_ws(self, ws: WsChannel) -> None:
        await self.serve_pg(ws, cleartext=True)

    async def serve_pg(self, ch: Channel, *, cleartext: bool) -> None:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                startup = await client_startup(ch, None if cleartext else self.tls)
                if isinstance(startup, pq.CancelRequest):
                    await forward_cancel(await self.selector.target(), startup,
                                         self.options.ca_file)
                    return
                await authenticate_client(ch, startup, cleartext=cleartext)
                up = await self._target()
                upstream, after_auth = await open_upstream(up, startup, self.options.ca_file)
        except (ProxyError, TimeoutError) as e:
            err = e if isinstance(e, ProxyError) else unreachable(
                f"no answer in {HANDSHAKE_TIMEOUT:.0f} s")
            ch.write(pq.error_response(err))
            await ch.drain()
            ch.close()
            return
        except UpstreamRefused as e:     # e.g. 3D000 database does not exist, as Postgres says
            ch.write(pq.message(b"E", e.body))
            await ch.drain()
            ch.close()
            return
        if self.selector.config.mode == "git":    # so that a checkout can end it
            try:
                pid = await backend_pid(upstream)
            except (OSError, asyncio.IncompleteReadError, ProxyError):
                upstream.close()
                ch.close()
                return
            if pid is not None:
                self.sessions.add(id(ch), OpenSession(up, startup.database, pid))
        ch.write(pq.auth(pq.AUTH_OK) + b"".join(after_auth))
        await ch.drain()
        try:
            await relay(ch, upstream)
        finally:
            self.sessions.remove(id(ch))

    async def _target(self) -> Upstream:
        try:
            return await self.selector.target()
        except ArgonError as e:
            raise unreachable(e.message) from None

    async def aclose(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.aclose()


async def run_door(selector: BranchSelector, options: DoorOptions,
                   tls: ssl.SSLContext | None) -> None:
    """Serve until SIGINT/SIGTERM; the ephemeral branch is deleted on the way out, also when
    starting fails half-way."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    door = Door(selector, options, tls)
    server = await asyncio.start_server(door.handle, listen_addresses(options.host), options.port,
                                        start_serving=False, reuse_address=True)
    try:
        start = asyncio.create_task(selector.start())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([start, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not start.done():         # stopped while the branch was being made
            start.cancel()
            await asyncio.gather(start, return_exceptions=True)
            return
        stopper.cancel()
        start.result()
        await server.start_serving()
        if selector.config.mode == "git" and selector.config.git_head is not None:
            follower = asyncio.create_task(follow_head(
                selector.config.git_head, selector, door.sessions, options.ca_file))
            door._tasks.add(follower)
        port = server.sockets[0].getsockname()[1]
        print(f"argon local: listening on {options.host}:{port}, serving {selector.describe}",
              flush=True)
        print(f"  postgres://neon:npg@localhost:{port}/neondb?sslmode=no-verify", flush=True)
        print(f"  http://localhost:{port}/sql", flush=True)
        await stop.wait()
        print("argon local: stopping", flush=True)
    finally:
        server.close()
        await door.aclose()
        try:
            await selector.stop()
        finally:
            await selector.api.aclose()
    print("argon local: stopped", flush=True)
