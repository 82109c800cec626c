"""Projects: create (with Neon's defaults), list, get, update, delete, connection URIs."""

from __future__ import annotations

import builtins
import logging
from dataclasses import dataclass, field

from sqlalchemy import Connection, delete, func, select, update

from argon.control import (ids, ip_allow, key_scope, logical_replication, project_template,
                           regions, validation)
from argon.control.context import ControlContext
from argon.control.hosts import connection_uri
from argon.control.models import (Branch, BranchState, ConnectionUri, Database, Endpoint,
                                  EndpointSettings, EndpointState, Mutation, Operation,
                                  OperationAction, Page, Project, Role)
from argon.control.operations import OperationLog, rolled_back
from argon.control.project_template import ProjectTemplates, templates_root
from argon.control.requests import ProjectCreate, ProjectUpdate
from argon.control.rows import (branch_from_row, database_from_row, endpoint_from_row,
                                project_from_row, role_from_row)
from argon.control.runtime import EndpointRuntime, free_port
from argon.errors import ArgonError, NotFound
from argon.meta import tables as t
from argon.pg import choose_install
from argon.pg.scram import make_verifier

logger = logging.getLogger(__name__)

DEFAULT_BRANCH = "main"
DEFAULT_DATABASE = "neondb"
DEFAULT_RETENTION = 86_400
MAX_LIMIT = 1000


@dataclass(frozen=True)
class ProjectCreated:
    project: Project
    branch: Branch
    endpoints: list[Endpoint]
    databases: list[Database]
    roles: list[Role]
    operations: list[Operation]
    connection_uris: list[ConnectionUri] = field(default_factory=list)


class ProjectService:
    def __init__(self, ctx: ControlContext, oplog: OperationLog, runtime: EndpointRuntime) -> None:
        self.ctx = ctx
        self.oplog = oplog
        self.runtime = runtime
        self._project_templates: ProjectTemplates | None = None

    # -- reads ---------------------------------------------------------------------------

    def _load(self, project_id: str) -> Project:
        key_scope.check_project(project_id)
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.projects).where(t.projects.c.id == project_id)).first()
            if row is None:
                raise NotFound(f"project {project_id!r} not found")
            default = conn.execute(select(t.branches.c.id).where(
                t.branches.c.project_id == project_id, t.branches.c.is_default)).scalar()
            timelines = conn.execute(select(t.branches.c.timeline_id).where(
                t.branches.c.project_id == project_id)).scalars()
            size = sum(self.ctx.sizes.get(tl, 0) for tl in timelines)
        return project_from_row(row, default, size)

    def get(self, project_id: str) -> Project:
        return self._load(project_id)

    def list(self, search: str | None = None, cursor: str | None = None,
             limit: int | None = None) -> Page[Project]:
        limit = min(max(limit or 10, 1), MAX_LIMIT)
        q = select(t.projects).order_by(t.projects.c.created_at.desc(), t.projects.c.id)
        only = key_scope.scoped_project()
        if only is not None:   # a project-scoped key sees its project only
            q = q.where(t.projects.c.id == only)
        if search:
            like = f"%{search}%"
            q = q.where(t.projects.c.name.ilike(like) | t.projects.c.id.ilike(like))
        with self.ctx.tx() as conn:
            if cursor:
                anchor = conn.execute(select(t.projects.c.created_at).where(
                    t.projects.c.id == cursor)).first()
                if anchor is not None:
                    q = q.where(t.projects.c.created_at < anchor.created_at)
            rows = conn.execute(q.limit(limit)).all()
            defaults = dict(conn.execute(select(t.branches.c.project_id, t.branches.c.id)
                                         .where(t.branches.c.is_default)).all())
        items = [project_from_row(r, defaults.get(r.id)) for r in rows]
        return Page(items, items[-1].id if len(items) == limit else None)

    # -- create --------------------------------------------------------------------------

    def create(self, req: ProjectCreate) -> ProjectCreated:
        key_scope.check_account_wide("creating a project")
        name = validation.name(req.name, "project name") if req.name is not None else None
        install = choose_install(req.pg_version)
        retention = validation.retention(
            req.history_retention_seconds if req.history_retention_seconds is not None
            else DEFAULT_RETENTION)
        des = _endpoint_settings(req.default_endpoint_settings, EndpointSettings())
        ip_allow.validate_settings(req.settings)
        validation.project_settings(req.settings or {})
        branch_name = validation.name(req.branch_name or DEFAULT_BRANCH, "branch name")
        db_name = validation.pg_identifier(req.database_name or DEFAULT_DATABASE,
                                           "database name")
        # Neon names the owner after the database when only the database is named.
        role_name = validation.pg_identifier(req.role_name or f"{db_name}_owner",
                                             "role name")
        region_id = regions.resolve(req.region_id)
        project_id, branch_id, endpoint_id = ids.project_id(), ids.branch_id(), ids.endpoint_id()
        timeline = ids.timeline_id()
        password = ids.role_password()
        verifier = str(make_verifier(password))
        self.ctx.storage.require_space_for_root(f"create project {name or project_id}")
        now = self.ctx.clock()
        with self.ctx.tx() as conn:
            conn.execute(t.projects.insert().values(
                id=project_id, name=name or project_id, region_id=region_id,
                pg_version=install.version, history_retention_seconds=retention,
                default_endpoint_settings=des.__dict__, settings=dict(req.settings or {}),
                created_at=now, updated_at=now))
            conn.execute(t.branches.insert().values(
                id=branch_id, project_id=project_id, timeline_id=timeline, parent_id=None,
                name=branch_name, state=BranchState.INIT.value, is_default=True,
                protected=False, init_source="parent-data", created_at=now, updated_at=now))
            conn.execute(t.endpoints.insert().values(
                id=endpoint_id, project_id=project_id, branch_id=branch_id, type="read_write",
                state=EndpointState.INIT.value, min_cu=des.autoscaling_limit_min_cu,
                max_cu=des.autoscaling_limit_max_cu,
                suspend_timeout_seconds=des.suspend_timeout_seconds, pooler_enabled=False,
                pooler_mode="transaction", disabled=False, pg_settings={},
                proxy_port=None if self.ctx.settings.domain else free_port(),
                pooler_port=None if self.ctx.settings.domain else free_port(),
                created_at=now, updated_at=now))
            op_tl = self.oplog.begin(conn, project_id, OperationAction.CREATE_TIMELINE,
                                     branch_id=branch_id)
        try:
            runnable = self.runtime.install_for(install.version)
            # a clone of the version's initdb'd template, with its own identity; the
            # first start sets the project's cloud_admin password (project_template.py)
            self.ctx.storage.init_timeline(
                timeline, lambda p: self._templates().fill(runnable, p))
            with self.runtime.connect(endpoint_id) as pg:
                project_template.bootstrap(pg, install.version, role_name, verifier, db_name)
        except Exception as exc:
            self.oplog.fail(op_tl, str(exc))
            self._destroy(project_id)
            if isinstance(exc, ArgonError):
                raise
            raise rolled_back("project creation", exc) from exc
        now = self.ctx.clock()

        def record_ready(conn: Connection) -> None:
            conn.execute(update(t.branches).where(t.branches.c.id == branch_id).values(
                state=BranchState.READY.value, updated_at=now))
            conn.execute(t.roles.insert().values(
                branch_id=branch_id, name=role_name, protected=False, scram_verifier=verifier,
                password_encrypted=self.ctx.secrets.seal(password), created_at=now,
                updated_at=now))
            conn.execute(t.databases.insert().values(
                branch_id=branch_id, name=db_name, owner_name=role_name, created_at=now,
                updated_at=now))
        self.oplog.finish(op_tl, also=record_ready)
        self.ctx.on_endpoints_changed()
        start_ops = self._ops_for(project_id, endpoint_id)
        logger.info("created project %s (%s) with branch %s", project_id, name, branch_id)
        self._templates().refill(runnable)   # the next project's clone, made ahead
        return self._created(project_id, branch_id, password, [op_tl, *start_ops])

    def _templates(self) -> ProjectTemplates:
        if self._project_templates is None:
            storage = self.ctx.storage
            self._project_templates = ProjectTemplates(templates_root(storage.root),
                                                       storage.driver, self.ctx.owner)
        return self._project_templates

    def _ops_for(self, project_id: str, endpoint_id: str) -> builtins.list[str]:
        with self.ctx.tx() as conn:
            return list(conn.execute(select(t.operations.c.id).where(
                t.operations.c.project_id == project_id,
                t.operations.c.endpoint_id == endpoint_id)).scalars())

    def _created(self, project_id: str, branch_id: str, password: str,
                 op_ids: builtins.list[str]) -> ProjectCreated:
        with self.ctx.tx() as conn:
            branch = conn.execute(select(t.branches).where(t.branches.c.id == branch_id)).one()
            eps = conn.execute(select(t.endpoints).where(
                t.endpoints.c.branch_id == branch_id)).all()
            dbs = conn.execute(select(t.databases).where(
                t.databases.c.branch_id == branch_id)).all()
            roles = conn.execute(select(t.roles).where(t.roles.c.branch_id == branch_id)).all()
        endpoints = [endpoint_from_row(e, self.ctx.settings) for e in eps]
        uris = [connection_uri(endpoints[0].host, roles[0].name, password, dbs[0].name)]
        return ProjectCreated(
            project=self._load(project_id), branch=branch_from_row(branch),
            endpoints=endpoints, databases=[database_from_row(d) for d in dbs],
            roles=[role_from_row(r, password) for r in roles],
            operations=self.oplog.get_many(op_ids), connection_uris=uris)

    # -- update / delete -----------------------------------------------------------------

    def update(self, project_id: str, req: ProjectUpdate) -> Mutation[Project]:
        current = self._load(project_id)
        values: dict[str, object] = {}
        if req.name is not None:
            values["name"] = validation.name(req.name, "project name")
        if req.history_retention_seconds is not None:
            values["history_retention_seconds"] = validation.retention(
                req.history_retention_seconds)
        if req.default_endpoint_settings is not None:
            values["default_endpoint_settings"] = _endpoint_settings(
                req.default_endpoint_settings, current.default_endpoint_settings).__dict__
        logical_on = logical_replication.turned_on(current.settings, req.settings)
        if req.settings is not None:
            values["settings"] = {**current.settings, **validation.project_settings(req.settings)}
        ip_allow.validate_settings(req.settings)
        if values:
            with self.ctx.tx() as conn:
                conn.execute(update(t.projects).where(t.projects.c.id == project_id)
                             .values(updated_at=self.ctx.clock(), **values))
            self.ctx.ip_allow.invalidate()   # the proxy reads allowed_ips from a cache
        op_ids = (logical_replication.restart_running_computes(self.ctx, self.runtime,
                                                               project_id)
                  if logical_on else [])
        return Mutation(self._load(project_id), self.oplog.get_many(op_ids))

    def delete(self, project_id: str) -> Mutation[Project]:
        key_scope.check_account_wide("deleting a project")
        project = self._load(project_id)
        with self.ctx.locks.hold(f"project:{project_id}", what=f"project {project_id}"):
            self._destroy(project_id)
        logger.info("deleted project %s", project_id)
        return Mutation(project, [])

    def _destroy(self, project_id: str) -> None:
        """Stop computes, delete timelines, then the rows (safe to repeat after a crash)."""
        with self.ctx.tx() as conn:
            eps = list(conn.execute(select(t.endpoints.c.id).where(
                t.endpoints.c.project_id == project_id)).scalars())
            tls = list(conn.execute(select(t.branches.c.timeline_id).where(
                t.branches.c.project_id == project_id)).scalars())
        for ep in eps:
            try:
                self.runtime.suspend(ep, reason="project deleted")
            except NotFound:
                pass
        for tl in tls:
            self.ctx.storage.delete_timeline(tl)
        with self.ctx.tx() as conn:
            conn.execute(delete(t.operations).where(t.operations.c.project_id == project_id))
            conn.execute(delete(t.projects).where(t.projects.c.id == project_id))
        self.ctx.on_endpoints_changed()

    # -- connection URIs -----------------------------------------------------------------

    def connection_uri(self, project_id: str, *, branch_id: str | None = None,
                       endpoint_id: str | None = None, database_name: str, role_name: str,
                       pooled: bool = False) -> ConnectionUri:
        project = self._load(project_id)
        branch_id = branch_id or project.default_branch_id
        with self.ctx.tx() as conn:
            q = select(t.endpoints).where(t.endpoints.c.project_id == project_id)
            q = q.where(t.endpoints.c.id == endpoint_id) if endpoint_id else q.where(
                t.endpoints.c.branch_id == branch_id, t.endpoints.c.type == "read_write")
            ep = conn.execute(q).first()
            if ep is None:
                raise NotFound(f"no endpoint for branch {branch_id!r}" if not endpoint_id
                               else f"endpoint {endpoint_id!r} not found")
            role = conn.execute(select(t.roles).where(
                t.roles.c.branch_id == ep.branch_id, t.roles.c.name == role_name)).first()
            db = conn.execute(select(t.databases.c.id).where(
                t.databases.c.branch_id == ep.branch_id,
                t.databases.c.name == database_name)).first()
        if role is None:
            raise NotFound(f"role {role_name!r} not found on branch {ep.branch_id}")
        if db is None:
            raise NotFound(f"database {database_name!r} not found on branch {ep.branch_id}")
        password = self.ctx.secrets.open(role.password_encrypted) if role.password_encrypted else None
        endpoint = endpoint_from_row(ep, self.ctx.settings)
        return connection_uri(endpoint.pooler_host if pooled else endpoint.host,
                              role_name, password, database_name)

    def count(self) -> int:
        with self.ctx.tx() as conn:
            return int(conn.execute(select(func.count()).select_from(t.projects)).scalar_one())


def _endpoint_settings(given: object | None, base: EndpointSettings) -> EndpointSettings:
    if given is None:
        return base
    min_cu = getattr(given, "autoscaling_limit_min_cu", None)
    max_cu = getattr(given, "autoscaling_limit_max_cu", None)
    timeout = getattr(given, "suspend_timeout_seconds", None)
    min_cu = base.autoscaling_limit_min_cu if min_cu is None else min_cu
    max_cu = base.autoscaling_limit_max_cu if max_cu is None else max_cu
    if max_cu < min_cu and getattr(given, "autoscaling_limit_max_cu", None) is None:
        max_cu = min_cu
    min_cu, max_cu = validation.cu_range(min_cu, max_cu)
    timeout = validation.suspend_timeout(base.suspend_timeout_seconds if timeout is None else timeout)
    return EndpointSettings(min_cu, max_cu, timeout)
