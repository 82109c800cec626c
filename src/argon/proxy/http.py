"""The proxy's HTTP side: ``POST /sql`` (delegated) and the WebSocket protocol on any
path, as a Starlette app served by uvicorn (websockets-sansio); optionally also reachable on the Postgres
port (the first bytes of an HTTP request are sniffed there, as Neon Local does)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from argon.errors import InvalidInput
from argon.http_guard import process_guard
from argon.proxy.routing import endpoint_from_address
from argon.proxy.server import ProxyServer, is_loopback
from argon.proxy.serverless.websocket import WsChannel
from argon.proxy.session import ClientInfo

logger = logging.getLogger(__name__)

SqlHandler = Callable[[Request], Awaitable[Response]]


def create_http_app(proxy: ProxyServer, sql_handler: SqlHandler) -> Starlette:
    """``POST``/``OPTIONS /sql`` go to ``sql_handler``; a WebSocket on any path speaks the
    Postgres protocol through ``proxy``."""

    async def sql(request: Request) -> Response:
        return await sql_handler(request)

    async def websocket(ws: WebSocket) -> None:
        await serve_websocket(proxy, ws)

    return Starlette(routes=[
        Route("/sql", sql, methods=["POST", "OPTIONS"]),
        WebSocketRoute("/{path:path}", websocket),
    ])


def _endpoint_from_loopback_port(proxy: ProxyServer,
                                 address: str | None) -> tuple[str, bool] | None:
    """``?address=127.0.0.1:<endpoint port>``: the driver passes the printed host and port,
    which in the no-DNS mode names the endpoint by its dedicated loopback port."""
    if not address or address.count(":") != 1:
        return None
    host, _, port = address.partition(":")
    if not (port.isdigit() and is_loopback(host)):
        return None
    return proxy.backend.endpoint_for_port(int(port))


async def serve_websocket(proxy: ProxyServer, ws: WebSocket) -> None:
    address = ws.query_params.get("address")
    host = ws.headers.get("host")
    found = (endpoint_from_address(address, proxy.domain)
             or _endpoint_from_loopback_port(proxy, address)
             or endpoint_from_address(host, proxy.domain))
    client_host = ws.client.host if ws.client else ""
    await ws.accept()
    proxy.metrics.connections_total += 1
    proxy.metrics.websocket_connections_total += 1
    channel = WsChannel(ws)
    info = ClientInfo(peer=f"ws:{client_host}", tls=ws.url.scheme == "wss",
                      loopback=is_loopback(client_host), host_endpoint=found, websocket=True,
                      address=client_host)
    try:
        await proxy.serve_client(channel, info)
    finally:
        await channel.finish()


@dataclass
class HttpServer:
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    async def stop(self) -> None:
        self.server.should_exit = True
        try:
            await asyncio.wait_for(self.task, 10)
        except TimeoutError:
            self.task.cancel()


def http_config(app: Starlette, **kw: Any) -> uvicorn.Config:
    """uvicorn's settings for the proxy's HTTP side, wherever it listens: the process's
    HTTP guard (header/body/handshake deadlines, connection cap) and websockets-sansio."""
    return uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
                          ws_max_size=16 * 1024 * 1024, ws_per_message_deflate=False,
                          **process_guard().protocols(), **kw)


async def start_http_server(app: Starlette, host: str, port: int) -> HttpServer:
    """Serve ``app`` with uvicorn on ``host:port`` (0 picks one) in this event loop."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {e.strerror}; choose a free "
                           "port") from None
    server = uvicorn.Server(http_config(app))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return HttpServer(server, task, int(sock.getsockname()[1]))


def attach_sniffing(proxy: ProxyServer, app: Starlette) -> None:
    """Serve HTTP requests (and WebSocket upgrades) that arrive on the Postgres port."""
    config = http_config(app)
    config.load()
    state = uvicorn.server.ServerState()

    async def handle(sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        protocol_cls: Any = config.http_protocol_class
        try:
            await loop.connect_accepted_socket(
                lambda: protocol_cls(config=config, server_state=state, app_state={}), sock)
        except OSError:
            sock.close()

    proxy.http_sniff_handler = handle
