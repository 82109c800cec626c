"""The public door, assembled: the proxy's listeners wired to the control services.

Postgres clients reach the proxy on ``--pg-port`` (SNI or options routing) and, in the
default no-DNS mode, on each endpoint's own loopback ports; HTTP clients (``/sql``) and
WebSocket clients reach ``--http-port``.  The control plane tells the gateway when
endpoints come and go so their listeners open before the API answers.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

from argon.control.proxy_backend import ControlProxyBackend
from argon.control.services import Services
from argon.errors import InvalidInput, NotFound
from argon.proxy.server import ProxyServer
from argon.proxy.tls import TlsConfig
from argon.settings import Settings

logger = logging.getLogger(__name__)

_ENDPOINT_LABEL = re.compile(r"^(ep-[a-z0-9-]+?)(-pooler)?$")
_OPTIONS_ENDPOINT = re.compile(r"(?:^|[\s,])(?:endpoint|project)=([A-Za-z0-9-]+)")


class Gateway:
    def __init__(self, services: Services, settings: Settings) -> None:
        self.services = services
        self.settings = settings
        self.backend = ControlProxyBackend(services)
        self.tls = TlsConfig.ensure(settings.home / "tls", settings.domain)
        self.proxy = ProxyServer(self.backend, self.tls, settings.domain,
                                 keep_direct_backends=settings.keep_direct_backends)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sync_lock = asyncio.Lock()
        self._http: Any = None
        self._http_task: asyncio.Task[None] | None = None
        self._sql: Any = None
        self.https: Any = None                # an argon.proxy.http.HttpServer when on
        self.https_note: str | None = None    # why HTTPS is off, for `argon start`

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.proxy.start(self.settings.listen_host, self.settings.pg_port)
        if self.settings.listen_host == "127.0.0.1":
            # *.localhost names resolve to ::1 first for some clients (Node): serve both
            # loopbacks so `--domain localhost` works wherever those names resolve.
            try:
                await self.proxy.start("::1", self.settings.pg_port)
            except OSError as exc:
                logger.info("not listening on [::1]:%d: %s", self.settings.pg_port, exc)
        await self.sync_listeners()
        self.services.ctx.on_endpoints_changed = self._endpoints_changed
        await self._start_http()

    # -- per-endpoint listeners ----------------------------------------------------------

    async def sync_listeners(self) -> None:
        if self.settings.domain:
            return
        async with self._sync_lock:
            wanted = await self.backend.workers.run_quick(self.backend.endpoint_ports)
            current = set(self.proxy._by_port)  # noqa: SLF001 - the proxy's own registry
            for port in current - wanted.keys():
                await self.proxy.remove_endpoint_listener(port)
            for port in wanted.keys() - current:
                endpoint_id, pooled = wanted[port]
                try:
                    await self.proxy.add_endpoint_listener(port, endpoint_id, pooled)
                except (OSError, InvalidInput) as exc:   # the port is taken (e.g. by
                    # another Argon on the same metadata): that endpoint's port is its
                    logger.warning("cannot listen on port %d for %s: %s", port, endpoint_id, exc)

    def _endpoints_changed(self) -> None:
        """Called from a service thread; waits until the listeners match the metadata."""
        if self._loop is None or self._loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self.sync_listeners(), self._loop)
        try:
            future.result(timeout=10)
        except Exception as exc:  # noqa: BLE001 - a listener problem must not fail the API call
            logger.warning("listener sync failed: %s", exc)

    # -- SQL over HTTP and WebSocket -----------------------------------------------------

    async def endpoint_for(self, host: str | None, port: int | None, options: str | None) -> str:
        return sql_endpoint(host, port, options, self.backend.endpoint_for_port)

    async def _wake_sql(self, endpoint_id: str) -> tuple[str, int]:
        try:
            address = await self.backend.wake(endpoint_id, pooled=False)
        except NotFound:
            raise
        return address.host, address.port

    async def _start_http(self) -> None:
        try:
            from argon.proxy.http import (  # noqa: PLC0415
                attach_sniffing, create_http_app, http_config)
        except ImportError:
            logger.warning("HTTP/WebSocket side of the proxy not available in this build")
            return
        import uvicorn  # noqa: PLC0415

        from argon.proxy.serverless.sql_over_http import (  # noqa: PLC0415
            ScramSqlResolver, SqlOverHttpHandler)

        resolver = ScramSqlResolver(self.endpoint_for, self.backend.role_secret, self._wake_sql,
                                    ip_allowed=self.backend.ip_allowed)
        sql = self._sql = SqlOverHttpHandler(resolver)
        app = create_http_app(self.proxy, sql)
        # Neon Local serves /sql and the Postgres protocol on one port; so do we: HTTP
        # requests arriving on the Postgres port are recognised by their first bytes.
        attach_sniffing(self.proxy, app)
        # Header, body and handshake deadlines and the shared HTTP connection cap.
        config = http_config(app, host=self.settings.listen_host, port=self.settings.http_port,
                             loop="none")
        self._http = uvicorn.Server(config)
        self._http.install_signal_handlers = lambda: None
        self._http_task = asyncio.create_task(self._http.serve())
        while not self._http.started:
            if self._http_task.done():
                await self._http_task
                return
            await asyncio.sleep(0.02)
        await self._start_https(app)

    async def _start_https(self, app: Any) -> None:
        """HTTPS on 443 (or --https-port) for the serverless driver's default URLs."""
        from argon.proxy.https import (  # noqa: PLC0415
            choose_https_port, https_hosts, start_https_server)
        s = self.settings
        port, self.https_note = choose_https_port(s.https_port, s.domain, s.http_port)
        if not port:
            if self.https_note:
                logger.warning("%s", self.https_note)
            return
        try:
            self.https = await start_https_server(app, self.tls, https_hosts(s.listen_host),
                                                  port)
        except InvalidInput as exc:
            if s.https_port is not None:
                raise   # asked for explicitly: refuse to start without it
            self.https_note = f"HTTPS is off: {exc.message}"
            logger.warning("%s", self.https_note)

    async def stop(self) -> None:
        self.services.ctx.on_endpoints_changed = lambda: None
        if self.https is not None:
            await self.https.stop()
        if self._http is not None:
            self._http.should_exit = True
            if self._http_task is not None:
                await self._http_task
        if self._sql is not None:
            await self._sql.aclose()
        await self.proxy.stop()


def sql_endpoint(host: str | None, port: int | None, options: str | None,
                 port_route: Callable[[int], tuple[str, bool] | None]) -> str:
    """Which endpoint a /sql connection string names: options, then host label, then port."""
    if options and (m := _OPTIONS_ENDPOINT.search(options)):
        return m.group(1)
    if host and (m := _ENDPOINT_LABEL.match(host.split(".", 1)[0])):
        return m.group(1)
    if port is not None and (route := port_route(port)):
        return route[0]
    raise InvalidInput("cannot tell which endpoint this connection string is for: use "
                       "the host Argon printed (127.0.0.1:<endpoint port> or "
                       "ep-....<domain>) or add options=endpoint%3Dep-...")


async def start_gateway(services: Services, settings: Settings) -> Gateway:
    gateway = Gateway(services, settings)
    await gateway.start()
    return gateway
