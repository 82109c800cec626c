"""The services container: one object the API, CLI, MCP server and proxy all use."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from argon.compute import ComputeManager, HostLayout, PoolerManager, socket_dir_for
from argon.control.api_keys import ApiKeyService
from argon.control.branches import BranchService
from argon.control.catalog import DatabaseService, RoleService
from argon.control.consumption import ConsumptionService
from argon.control.context import ControlContext
from argon.control.coordinator import coordinator_for
from argon.control.endpoints import EndpointService
from argon.control.monitoring import MonitoringSampler
from argon.control.operations import OperationLog, OperationService
from argon.control.organization import OrganizationService
from argon.control.otel_export import OtelExport
from argon.control.permissions import PermissionService
from argon.control.pins import CoordinatedPins
from argon.control.platform import PlatformService
from argon.control.projects import ProjectService
from argon.control.query_history import QueryHistory
from argon.control.reconciler import Reconciler
from argon.control.repair import repair
from argon.control.runtime import EndpointRuntime
from argon.control.secretbox import SecretBox
from argon.control.sql_runner import SqlRunner
from argon.control.table_browser import TableBrowser
from argon.control.timetravel import TimeTravel
from argon.errors import Unavailable
from argon.home import restrict_home
from argon.meta.db import open_database
from argon.pg import pg_os_user
from argon.settings import Settings
from argon.storage import Storage, detect_clone_driver
from argon.storage.locator import LocalDataDirs
from argon.storage.space import SpaceReserve

logger = logging.getLogger(__name__)


@dataclass
class Services:
    ctx: ControlContext
    runtime: EndpointRuntime
    projects: ProjectService
    branches: BranchService
    endpoints: EndpointService
    databases: DatabaseService
    roles: RoleService
    operations: OperationService
    api_keys: ApiKeyService
    platform: PlatformService
    reconciler: Reconciler
    organization: OrganizationService
    permissions: PermissionService
    consumption: ConsumptionService
    query_history: QueryHistory
    sql: SqlRunner
    tables: TableBrowser
    monitoring: MonitoringSampler
    otel: OtelExport

    def repair(self) -> list[str]:
        """Recover unfinished work if this process leads (another leader already did)."""
        return self.reconciler.take_lead(serving=False)

    def stop_all_computes(self) -> int:
        """Suspend every running compute (clean shutdown); returns how many were stopped."""
        stopped = 0
        for project in self.projects.list(limit=1000).items:
            for ep in self.endpoints.list(project.id):
                try:
                    stopped += self.runtime.suspend(ep.id, reason="Argon is stopping")
                except Exception as exc:  # noqa: BLE001 - keep stopping the others
                    logger.warning("could not stop compute %s: %s", ep.id, exc)
        return stopped


def prepare_home(home: Path) -> None:
    """Create the home, private to Argon's account (see ``argon.home``): the Postgres
    account may cross (0711, not list) the home, ``timelines`` and ``run`` (and
    ``run/pgbouncer``) to reach its own 0700 directories; everything else is 0700/0600,
    including files an older Argon left readable."""
    home.mkdir(parents=True, exist_ok=True)
    for sub in ("timelines", "logs", "run", "secrets", "run/pgbouncer"):
        (home / sub).mkdir(exist_ok=True)
    for path, mode in ((home, 0o711), (home / "timelines", 0o711), (home / "run", 0o711),
                       (home / "run" / "pgbouncer", 0o711), (home / "secrets", 0o700),
                       (home / "logs", 0o700)):
        os.chmod(path, mode)
    # Argon writes the logs and hands Postgres an open descriptor; the Postgres account
    # (which every compute runs as) must not read other projects' logs or Argon's own.
    if os.stat(home / "logs").st_uid != os.getuid():
        os.chown(home / "logs", os.getuid(), os.getgid())
    # A deep home's socket directories live under /tmp/argon-<hash> instead of run/
    # (compute.sockets): the Postgres account crosses that parent the same way.
    sockets = socket_dir_for(home, "ep-" + "x" * 24).parent
    if sockets != home / "run":
        sockets.mkdir(mode=0o711, exist_ok=True)
        os.chmod(sockets, 0o711)
    changed = restrict_home(home)
    if changed:
        logger.info("made %d file(s) in the home private, e.g. %s", len(changed), changed[0])


def build_services(settings: Settings) -> Services:
    prepare_home(settings.home)
    owner = pg_os_user()
    driver = detect_clone_driver(settings.home / "timelines", settings.clone_driver)
    # On the home's filesystem, like the metadata database it makes room for.
    reserve = SpaceReserve(settings.home / "run" / "space-reserve")
    storage = Storage(settings.home / "timelines", driver, owner, reserve)
    if settings.object_store_url:
        from argon.storage.objectstore.setup import use_object_store  # noqa: PLC0415
        use_object_store(storage, settings.home, settings.object_store_url)
        from argon.storage.objectstore.snapshot_sync import attach_snapshot_sync  # noqa: PLC0415
        attach_snapshot_sync(storage, settings.object_store_url, settings.home / "secrets",
                             None if settings.metadata_url else settings.home / "argon.db")
    # the local providers: data directories from storage, sockets and logs in the home
    layout = HostLayout(LocalDataDirs(storage, storage.replica_store()), settings.home)
    try:
        poolers: PoolerManager | None = PoolerManager(owner, layout)
        logger.info("pooled hosts: PgBouncer %s (%s)", ".".join(map(str, poolers.version)),
                    poolers.binary)
    except Unavailable as exc:
        logger.warning("%s; pooled (-pooler) connections are unavailable", exc.message)
        poolers = None
    engine = open_database(settings.db_url)
    ctx = ControlContext(settings=settings, engine=engine,
                         storage=storage, computes=ComputeManager(owner, layout), poolers=poolers,
                         owner=owner, secrets=SecretBox(settings.home / "secrets" / "fernet.key"),
                         locks=coordinator_for(engine))
    # pins on history go through the coordinator: another process's GC sees them too
    storage.pins = CoordinatedPins(ctx.locks)
    oplog = OperationLog(ctx)
    runtime = EndpointRuntime(ctx, oplog)
    endpoints = EndpointService(ctx, oplog, runtime)
    branches = BranchService(ctx, oplog, runtime, endpoints, TimeTravel(ctx, runtime))
    roles = RoleService(ctx, oplog, runtime, endpoints)
    query_history = QueryHistory(ctx)
    sql_runner = SqlRunner(ctx, runtime, branches, roles, query_history)
    otel = OtelExport(ctx)
    projects = ProjectService(ctx, oplog, runtime)
    return Services(
        ctx=ctx, runtime=runtime,
        projects=projects,
        branches=branches, endpoints=endpoints,
        databases=DatabaseService(ctx, oplog, runtime, endpoints),
        roles=roles,
        operations=OperationService(ctx), api_keys=ApiKeyService(ctx),
        platform=PlatformService(ctx),
        # a new leader first recovers what a crashed one left unfinished
        reconciler=Reconciler(ctx, runtime, branches,
                              recover=lambda serving: repair(ctx, runtime, projects,
                                                             serving=serving)),
        organization=OrganizationService(ctx), permissions=PermissionService(ctx),
        consumption=ConsumptionService(ctx),
        query_history=query_history, sql=sql_runner, tables=TableBrowser(sql_runner),
        monitoring=MonitoringSampler(ctx, runtime, otel), otel=otel)
