"""``argon start``: the platform in one process.

One asyncio loop (uvloop) hosts the API (uvicorn), the proxy (Postgres
wire protocol, /sql and WebSocket) and, on a thread, the reconciler.  The control
services are synchronous and run in worker threads.  Ctrl-C or SIGTERM stops the proxy,
the API and every compute, in that order.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from argon.control import Services, build_services
from argon.control.requests import ProjectCreate
from argon.descriptors import raise_nofile_limit
from argon.errors import ArgonError, Unavailable
from argon.home import BOOTSTRAP_KEY_FILE, STATE_FILE, set_private_umask, write_private
from argon.http_guard import configure_process_guard, process_guard
from argon.settings import Settings
from argon.storage.pool_mount import PoolGrower, PoolStatus, StoragePool

logger = logging.getLogger(__name__)



@dataclass
class StartupReport:
    api_url: str
    docs_url: str
    pg_port: int
    http_port: int
    api_key: str
    default_connection_uri: str | None
    clone_driver: str
    repairs: list[str] = field(default_factory=list)
    metadata: str = ""   # which store, and who leads the reconciler (no password)
    storage_pool: PoolStatus | None = None


def bootstrap_key(services: Services) -> str:
    """The first API key, made on the first start and kept (0600) in the home."""
    path = services.ctx.settings.home / BOOTSTRAP_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    _, secret = services.api_keys.create("bootstrap")
    write_private(path, secret + "\n")
    return secret


def ensure_default_project(services: Services) -> str | None:
    """Create the default project on the first start; its connection string."""
    marker = services.ctx.settings.home / "secrets" / "default_project"
    if marker.exists():
        project_id = marker.read_text().strip()
        try:
            project = services.projects.get(project_id)
        except ArgonError:
            return None
        roles = services.roles.list(project.id, project.default_branch_id or "")
        dbs = services.databases.list(project.id, project.default_branch_id or "")
        if not roles or not dbs:
            return None
        return services.projects.connection_uri(
            project.id, database_name=dbs[0].name, role_name=dbs[0].owner_name).connection_uri
    if services.projects.count() > 0:
        return None
    created = services.projects.create(ProjectCreate(name="default"))
    write_private(marker, created.project.id + "\n")
    return created.connection_uris[0].connection_uri if created.connection_uris else None


def metadata_note(services: Services) -> str:
    """The metadata store for `argon start`: SQLite's file, or Postgres's URL without its
    password, and the coordinator (who leads the reconciler)."""
    from argon.meta.db import describe_url  # noqa: PLC0415

    ctx = services.ctx
    if ctx.engine.dialect.name == "sqlite":
        return f"SQLite {ctx.engine.url.database}"
    return f"Postgres {describe_url(ctx.settings.db_url)} ({ctx.locks.describe()})"


class HomeLock:
    """One Argon per home: an exclusive flock held for the life of the process."""

    def __init__(self, home: Path) -> None:
        self.path = home / "run" / "argon.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Unavailable(f"another Argon is already running on home {self.path.parent.parent}; "
                              "stop it first or pass another --home") from None
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Platform:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = HomeLock(settings.home)
        self.services: Services | None = None
        self._servers: list[Any] = []
        self._proxy: Any = None
        self.pool = StoragePool(settings.home)
        self._pool_grower = PoolGrower(self.pool)

    def prepare(self) -> StartupReport:
        """Everything before serving: lock, metadata, repair, bootstrap key, default project."""
        # Parents of a new home keep the usual modes (the Postgres account must cross
        # them); what Argon and its children create inside is private (argon.home).
        self.settings.home.mkdir(parents=True, exist_ok=True)
        set_private_umask()
        self.lock.acquire()
        # Computes, PgBouncers and clients all need descriptors: take what the hard limit
        # allows, and cap HTTP connections so a reserve stays for Postgres clients.
        configure_process_guard(raise_nofile_limit())
        # Before the storage opens the timelines: they may live in the pool's image.
        pool = self.pool.ensure(self.settings.storage_pool)
        services = self.services = build_services(self.settings)
        repairs = services.repair()
        key = bootstrap_key(services)
        # two Argons starting at once on one empty metadata database make one project
        with services.ctx.locks.hold("platform:default-project", wait=120,
                                     what="the default project"):
            uri = ensure_default_project(services)
        s = self.settings
        return StartupReport(
            api_url=f"http://{s.listen_host}:{s.api_port}/api/v2",
            docs_url=f"http://{s.listen_host}:{s.api_port}/api/v2/docs",
            pg_port=s.pg_port, http_port=s.http_port, api_key=key,
            default_connection_uri=uri, clone_driver=services.ctx.storage.driver.name,
            repairs=repairs, metadata=metadata_note(services), storage_pool=pool)

    async def serve(self, on_ready: Callable[[], None]) -> None:
        assert self.services is not None
        services = self.services
        from argon.api.app import create_app  # noqa: PLC0415 - keeps `argon --help` fast

        from argon.api.routes.argon_ext import router as argon_router  # noqa: PLC0415

        from argon.metrics import metrics_endpoint  # noqa: PLC0415

        app = create_app(services)
        app.include_router(argon_router, prefix="/api/v2")
        app.add_route("/metrics", metrics_endpoint(services, self._proxy_metrics),
                      methods=["GET"], include_in_schema=False)
        # The API shares the HTTP guard (deadlines, connection cap) with /sql and WebSocket.
        config = uvicorn.Config(app, host=self.settings.listen_host, port=self.settings.api_port,
                                log_level="warning", lifespan="on", loop="none",
                                **process_guard().protocols())
        api = uvicorn.Server(config)
        api.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._servers.append(api)
        self._proxy = await start_proxy(services, self.settings)
        services.reconciler.start()
        services.monitoring.start()
        self._pool_grower.start()
        if services.ctx.storage.snapshot_sync is not None:   # snapshots to the bucket
            services.ctx.storage.snapshot_sync.start()
        api_task = asyncio.create_task(api.serve())
        while not api.started:
            if api_task.done():
                await api_task
                raise Unavailable(f"the API could not listen on port {self.settings.api_port}")
            await asyncio.sleep(0.02)
        self._write_state()
        on_ready()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        logger.info("stopping")
        if self._proxy is not None:
            await self._proxy.stop()
        api.should_exit = True
        await api_task

    def _proxy_metrics(self) -> dict[str, Any] | None:
        if self._proxy is None:
            return None
        return self._proxy.proxy.metrics.snapshot()  # type: ignore[no-any-return]

    def _write_state(self) -> None:
        s = self.settings
        write_private(s.home / STATE_FILE, json.dumps({
            "pid": os.getpid(), "api_url": f"http://{s.listen_host}:{s.api_port}/api/v2",
            "api_port": s.api_port, "pg_port": s.pg_port, "http_port": s.http_port,
            "listen_host": s.listen_host, "domain": s.domain,
            "https_port": self._https_port()}))

    def _https_port(self) -> int:
        https = getattr(self._proxy, "https", None)
        return int(https.port) if https is not None else 0

    def startup_notes(self) -> list[str]:
        """Host mode, HTTPS, name resolution and CA trust, for `argon start`."""
        from argon.neon_style import startup_notes  # noqa: PLC0415
        s = self.settings
        tls = getattr(self._proxy, "tls", None)
        notes = startup_notes(s.domain, self._https_port(), getattr(self._proxy, "https_note",
                              None), s.pg_port, s.http_port, getattr(tls, "ca_file", None))
        return [*notes, self._pooler_note()]

    def _pooler_note(self) -> str:
        """Which PgBouncer serves the -pooler hosts, or why none does."""
        poolers = self.services.ctx.poolers if self.services is not None else None
        if poolers is None:
            return ("  pooled hosts unavailable: no PgBouncer >= 1.21 (run scripts/pgbouncer.sh "
                    "as root, then restart Argon)")
        return (f"  pooled hosts  PgBouncer {'.'.join(map(str, poolers.version))} "
                f"({poolers.binary}), transaction mode, prepared statements on")

    def shutdown(self) -> int:
        """Stop the reconciler and every compute; returns how many computes stopped."""
        stopped = 0
        if self.services is not None:
            self.services.reconciler.stop()
            self.services.monitoring.stop()
            stopped = self.services.stop_all_computes()
            if self.services.ctx.storage.snapshot_sync is not None:   # after the computes:
                self.services.ctx.storage.snapshot_sync.stop()        # the last metadata
            self.services.ctx.locks.close()   # another Argon may lead from now on
        self._pool_grower.stop()
        if self.lock.held:
            # The computes are stopped: nothing holds the pool (if one would not stop,
            # the pool stays mounted and the next start adopts it).
            self.pool.release()
            # only the process that holds the home may remove its state file; a second
            # `argon start` refused by the lock must leave the running one's alone
            (self.settings.home / STATE_FILE).unlink(missing_ok=True)
        self.lock.release()
        return stopped


async def start_proxy(services: Services, settings: Settings) -> Any:
    """Start the proxy if the proxy room is available; it is the only public door."""
    from argon.gateway import start_gateway  # noqa: PLC0415
    return await start_gateway(services, settings)
