"""The proxy's Postgres listeners: accept, negotiate TLS, hand each client to a Session.

TLS is decided before any transport exists: the first bytes are peeked on the raw socket,
so a direct TLS ClientHello (``sslnegotiation=direct``) and the ``SSLRequest`` dance both
end in ``connect_accepted_socket(..., ssl=ctx)`` with nothing lost, and plaintext
clients get a plain transport.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import ipaddress
import logging
import select
import socket
import struct
import uuid
from typing import Any

from argon.errors import Conflict, InvalidInput
from argon.logs import request_id
from argon.proxy import pq
from argon.proxy.backend import ProxyBackend
from argon.proxy.cancel import CancelMap
from argon.proxy.early import EarlyConnections
from argon.proxy.errors import ErrorKind, ProxyError
from argon.proxy.metrics import ProxyMetrics
from argon.proxy.relay import PgSide
from argon.proxy.session import ClientChannel, ClientInfo, Session
from argon.proxy.spares import SparePool
from argon.proxy.tls import ALPN_POSTGRESQL, TlsConfig

logger = logging.getLogger(__name__)

TLS_HANDSHAKE_TIMEOUT = 10.0
# connections accepted per readiness event before other work gets the loop
ACCEPT_BATCH = 16
_HTTP_PREFIXES = (b"GET ", b"POST", b"PUT ", b"HEAD", b"OPTI", b"DELE", b"PATC")


@functools.lru_cache(maxsize=1024)
def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Listener:
    def __init__(self, sock: socket.socket, route: tuple[str, bool] | None) -> None:
        self.sock = sock
        self.route = route
        self.watching = False
        self.retry: asyncio.TimerHandle | None = None   # re-watch after a failed accept

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])


class ProxyServer:
    """The Postgres side of the proxy.  HTTP/WebSocket: see ``argon.proxy.http``."""

    def __init__(self, backend: ProxyBackend, tls: TlsConfig | None, domain: str | None, *,
                 auth_timeout: float = 30.0, handshake_timeout: float = 10.0,
                 keep_direct_backends: bool = True) -> None:
        self.backend = backend
        self.tls = tls
        self.domain = domain
        self.auth_timeout = auth_timeout
        self.handshake_timeout = handshake_timeout
        self.metrics = ProxyMetrics()
        self.cancels = CancelMap()
        self.early = EarlyConnections(backend, self.metrics)
        self.spares = SparePool()
        # direct sessions' backends kept for the next client (argon.proxy.backend_reset)
        self.keep_direct_backends = keep_direct_backends
        self.plaintext_loopback = tls.allow_plaintext_loopback if tls else True
        self._ssl = tls.server_context() if tls else None
        # the default certificate's; a connection shown a minted leaf gets that one's
        self.channel_binding = tls.channel_binding() if tls else None
        self._main: list[_Listener] = []
        self._by_port: dict[int, _Listener] = {}
        self._sessions: set[asyncio.Task[None]] = set()
        self._clients: set[ClientChannel] = set()
        self.http_sniff_handler: Any = None   # set by argon.proxy.http.attach_sniffing

    @property
    def ports(self) -> list[int]:
        return [lst.port for lst in self._main]

    async def start(self, host: str, port: int) -> int:
        """Listen for Postgres clients on ``host:port`` (0 picks a port); returns the port."""
        listener = self._listen(host, port, None)
        self._main.append(listener)
        return listener.port

    async def add_endpoint_listener(self, port: int, endpoint_id: str, pooled: bool, *,
                                    host: str = "127.0.0.1") -> int:
        """A loopback port that always routes to one endpoint (the no-DNS local mode)."""
        if port in self._by_port:
            raise Conflict(f"port {port} already has an endpoint listener")
        listener = self._listen(host, port, (endpoint_id, pooled))
        self._by_port[listener.port] = listener
        return listener.port

    async def remove_endpoint_listener(self, port: int) -> None:
        listener = self._by_port.pop(port, None)
        if listener is not None:
            await self._close_listener(listener)

    def _listen(self, host: str, port: int, route: tuple[str, bool] | None) -> _Listener:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(512)
        except OSError as e:
            sock.close()
            raise InvalidInput(f"cannot listen on {host}:{port}: {e.strerror}; choose a free "
                               "port") from None
        sock.setblocking(False)
        listener = _Listener(sock, route)
        self._watch_accepts(listener)
        logger.info("proxy listening on %s:%d%s", host, listener.port,
                    f" for {route[0]}" if route else "")
        return listener

    async def _close_listener(self, listener: _Listener) -> None:
        if listener.retry is not None:
            listener.retry.cancel()
        self._unwatch_accepts(listener)
        listener.sock.close()

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, let running sessions finish up to ``drain_timeout``, then close."""
        for listener in [*self._main, *self._by_port.values()]:
            await self._close_listener(listener)
        self._main.clear()
        self._by_port.clear()
        self.spares.close()
        if self._sessions:
            logger.info("waiting up to %.0fs for %d proxy sessions", drain_timeout,
                        len(self._sessions))
            await asyncio.wait(set(self._sessions), timeout=drain_timeout)
        for client in list(self._clients):
            client.close()
        for task in list(self._sessions):
            task.cancel()
        if self._sessions:
            await asyncio.wait(set(self._sessions), timeout=5)

    def _watch_accepts(self, listener: _Listener) -> None:
        # one reader for the listener's whole life: no epoll registration per accept
        asyncio.get_running_loop().add_reader(listener.sock.fileno(), self._accept, listener)
        listener.watching = True

    def _unwatch_accepts(self, listener: _Listener) -> None:
        if listener.watching:
            listener.watching = False
            asyncio.get_running_loop().remove_reader(listener.sock.fileno())

    def _accept(self, listener: _Listener) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, addr = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:   # EMFILE and friends: back off, keep serving
                logger.warning("accept failed: %s", e)
                self._unwatch_accepts(listener)
                listener.retry = asyncio.get_running_loop().call_later(
                    0.1, self._watch_accepts, listener)
                return
            self.metrics.connections_total += 1
            self.spawn(self._handle_socket(sock, addr, listener))

    def spawn(self, coro: Any) -> None:
        # Each session logs under its own id.  Not the accepting callback's context: a
        # listener opened inside an API request would give every session that request's id.
        context = contextvars.Context()
        context.run(request_id.set, str(uuid.uuid4()))
        task = asyncio.create_task(coro, context=context)
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _handle_socket(self, sock: socket.socket, addr: Any, listener: _Listener) -> None:
        peer_host = str(addr[0])
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            async with asyncio.timeout(self.handshake_timeout):
                mode = await self._negotiate(sock)
        except (TimeoutError, OSError, ProxyError) as e:
            self.metrics.errors[ErrorKind.PROTOCOL.value] += 1
            logger.info("connection from %s dropped before startup: %s", peer_host, e)
            sock.close()
            return
        if mode == "close":
            sock.close()
            return
        if mode == "http":
            if self.http_sniff_handler is None:
                sock.close()
                return
            await self.http_sniff_handler(sock)
            return
        loop = asyncio.get_running_loop()
        use_tls = mode in ("tls", "direct")
        side = PgSide("client")   # uvloop returns its SSLProtocol, not ours: keep a handle
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: side, sock, ssl=self._ssl if use_tls else None,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if use_tls else None)
        except (OSError, ConnectionError, TimeoutError) as e:
            self.metrics.errors[ErrorKind.TLS.value] += 1
            logger.info("TLS handshake with %s failed: %s", peer_host, e)
            sock.close()
            return
        sni = binding = None
        if use_tls:
            sslobj = transport.get_extra_info("ssl_object")
            sni = getattr(sslobj, "argon_sni", None)
            binding = self.tls.presented_binding(sslobj) if self.tls else None
            if mode == "direct" and sslobj.selected_alpn_protocol() != ALPN_POSTGRESQL:
                self.metrics.errors[ErrorKind.TLS.value] += 1
                side.write(pq.error_response(ProxyError(
                    ErrorKind.TLS, "received direct SSL connection request without ALPN "
                    "protocol negotiation extension", sqlstate="08P01")))
                transport.close()
                return
        port_route = listener.route or self.backend.endpoint_for_port(listener.port)
        info = ClientInfo(peer=f"{peer_host}:{addr[1]}", tls=use_tls,
                          loopback=is_loopback(peer_host), sni=sni, port_endpoint=port_route,
                          address=peer_host, channel_binding=binding)
        await self.serve_client(side, info)

    async def serve_client(self, client: ClientChannel, info: ClientInfo) -> None:
        """Run one session to its end (also used by the WebSocket path)."""
        self.metrics.connections_active += 1
        self._clients.add(client)
        try:
            await Session(self, client, info).run()
        finally:
            self._clients.discard(client)
            self.metrics.connections_active -= 1

    async def _negotiate(self, sock: socket.socket) -> str:
        """Peek at the first bytes: 'direct' TLS, 'tls' after SSLRequest, 'plain',
        'http', or 'close' (the client left)."""
        while True:
            head = await _peek(sock, 1)     # all of the first 8 bytes that have come
            if not head:
                return "close"
            if head[0] == 0x16:
                return "direct" if self._ssl is not None else "close"
            if len(head) < 4:
                head = await _peek(sock, 4)
                if len(head) < 4:
                    return "close"
            if head[:4] in _HTTP_PREFIXES:
                return "http"
            if struct.unpack("!i", head[:4])[0] != 8:
                return "plain"   # a startup or cancel packet: the session reads it
            if len(head) < 8:
                head = await _peek(sock, 8)
            if len(head) < 8:
                return "close"
            length, code = struct.unpack("!ii", head)
            if length == 8 and code == pq.SSL_REQUEST_CODE:
                sock.recv(8)
                if self._ssl is None:
                    sock.send(b"N")
                    continue
                sock.send(b"S")
                return "tls"
            if length == 8 and code == pq.GSSENC_REQUEST_CODE:
                sock.recv(8)
                sock.send(b"N")
                continue
            return "plain"


async def _peek(sock: socket.socket, n: int) -> bytes:
    """At least ``n`` (at most 8) of the first bytes, unread; fewer if the client left."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = sock.recv(8, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            fut = loop.create_future()
            loop.add_reader(sock.fileno(), _set_done, fut)
            try:
                await fut
            finally:
                loop.remove_reader(sock.fileno())
            continue
        if len(data) >= n or not data or _peer_closed(sock):
            return data
        await asyncio.sleep(0.002)   # a split first packet: rare, so poll briefly


_POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the client half-closed (so a partial first packet will never complete)."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | _POLLRDHUP)
    return any(ev & (_POLLRDHUP | select.POLLHUP | select.POLLERR)
               for _, ev in poller.poll(0))


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
