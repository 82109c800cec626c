"""Branches: copy-on-write children of a parent timeline, with Neon's rules."""

from __future__ import annotations

import builtins
import logging
from datetime import datetime
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from argon.compute.backup import backup_of
from argon.control import ids, sql_roles, validation
from argon.control.context import ControlContext
from argon.control.endpoints import EndpointService
from argon.control.hosts import connection_uri
from argon.control.models import (Branch, BranchState, ConnectionUri, Database, Endpoint,
                                  Mutation, Operation, OperationAction, Page, Role)
from argon.control.operations import OperationLog, rolled_back
from argon.control.requests import BranchCreate, BranchRestore, BranchUpdate, EndpointCreate
from argon.control.restore import Restorer, ephemeral_at, schema_only
from argon.control.schema_diff import SchemaDiff, branch_schema, compare_schema
from argon.control.timetravel import EphemeralCompute, TimeTravel, parse_point
from argon.control.rows import branch_from_row, database_from_row, role_from_row
from argon.control.runtime import EndpointRuntime
from argon.control.lookup import branch_row, require_project
from argon.errors import ArgonError, Conflict, InvalidInput, NotFound
from argon.meta import tables as t

logger = logging.getLogger(__name__)

MAX_LIMIT = 10_000


@dataclass(frozen=True)
class BranchCreated:
    branch: Branch
    endpoints: list[Endpoint]
    databases: list[Database]
    roles: list[Role]
    operations: list[Operation]
    connection_uris: list[ConnectionUri] = field(default_factory=list)


class BranchService:
    def __init__(self, ctx: ControlContext, oplog: OperationLog, runtime: EndpointRuntime,
                 endpoints: EndpointService, time_travel: TimeTravel) -> None:
        self.ctx = ctx
        self.oplog = oplog
        self.runtime = runtime
        self.endpoints = endpoints
        self.sizes = ctx.sizes
        self.tt = time_travel

    # -- reads ---------------------------------------------------------------------------

    def row(self, conn: Connection, project_id: str, branch_ref: str):  # type: ignore[no-untyped-def]
        """A branch row by id or by name (the CLI and neonctl accept both)."""
        return branch_row(conn, project_id, branch_ref)

    def _model(self, row) -> Branch:  # type: ignore[no-untyped-def]
        return branch_from_row(row, self.sizes.get(row.timeline_id, 0))

    def get(self, project_id: str, branch_id: str) -> Branch:
        with self.ctx.tx() as conn:
            return self._model(self.row(conn, project_id, branch_id))

    def list(self, project_id: str, search: str | None = None, cursor: str | None = None,
             limit: int | None = None) -> Page[Branch]:
        limit = min(max(limit or MAX_LIMIT, 1), MAX_LIMIT)
        q = (select(t.branches).where(t.branches.c.project_id == project_id)
             .order_by(t.branches.c.created_at.desc(), t.branches.c.id))
        if search:
            like = f"%{search}%"
            q = q.where(t.branches.c.name.ilike(like) | t.branches.c.id.ilike(like))
        with self.ctx.tx() as conn:
            require_project(conn, project_id)
            if cursor:
                anchor = conn.execute(select(t.branches.c.created_at).where(
                    t.branches.c.id == cursor)).first()
                if anchor is not None:
                    q = q.where(t.branches.c.created_at < anchor.created_at)
            rows = conn.execute(q.limit(limit)).all()
        items = [self._model(r) for r in rows]
        return Page(items, items[-1].id if len(items) == limit else None)

    def count(self, project_id: str, search: str | None = None) -> int:
        q = select(func.count()).select_from(t.branches).where(
            t.branches.c.project_id == project_id)
        if search:
            q = q.where(t.branches.c.name.ilike(f"%{search}%"))
        with self.ctx.tx() as conn:
            return int(conn.execute(q).scalar_one())

    # -- create --------------------------------------------------------------------------

    def create(self, project_id: str, req: BranchCreate) -> BranchCreated:
        at = parse_point(req.parent_lsn, req.parent_timestamp)
        init_source = req.init_source or "parent-data"
        if init_source not in ("parent-data", "schema-only"):
            raise InvalidInput(f"init_source {req.init_source!r} is not supported; "
                               "use 'parent-data' or 'schema-only'")
        if req.expires_at is not None:
            validation_expiry(req.expires_at, self.ctx.clock())
        branch_id, timeline = ids.branch_id(), ids.timeline_id()
        name = validation.name(req.name, "branch name") if req.name else branch_id
        now = self.ctx.clock()
        with self.ctx.tx() as conn:
            if req.parent_id:
                parent = self.row(conn, project_id, req.parent_id)
            else:
                parent = conn.execute(select(t.branches).where(
                    t.branches.c.project_id == project_id, t.branches.c.is_default)).first()
                if parent is None:
                    raise NotFound(f"project {project_id!r} not found")
            if parent.state != BranchState.READY.value:
                raise Conflict(f"parent branch {parent.name} is not ready ({parent.state})")
            if conn.execute(select(t.branches.c.id).where(
                    t.branches.c.project_id == project_id, t.branches.c.name == name)).first():
                raise Conflict(f"branch with name {name!r} already exists")
            # Before any row is written, so a full disk refuses with nothing to undo.
            self.ctx.storage.require_space_for_branch(parent.timeline_id,
                                                      f"create branch {name}")
            parent_ep = conn.execute(select(t.endpoints.c.id).where(
                t.endpoints.c.branch_id == parent.id,
                t.endpoints.c.type == "read_write")).scalar()
            try:
                conn.execute(t.branches.insert().values(
                    id=branch_id, project_id=project_id, timeline_id=timeline,
                    parent_id=parent.id, name=name, state=BranchState.INIT.value,
                    is_default=False, protected=bool(req.protected), init_source=init_source,
                    expires_at=req.expires_at, created_at=now, updated_at=now))
            except IntegrityError:
                # the same name created meanwhile (another API process on the database)
                raise Conflict(f"branch with name {name!r} already exists") from None
            _copy_roles_and_databases(conn, parent.id, branch_id, now)
            op = self.oplog.begin(conn, project_id, OperationAction.CREATE_BRANCH,
                                  branch_id=branch_id)
        try:
            if at is None:
                point = self._clone(parent.timeline_id, timeline, parent_ep, parent.name)
            else:
                point = self.tt.branch_at(timeline, parent, parent_ep, at)
            if init_source == "schema-only":
                schema_only(self.tt, timeline, self._pg_version(project_id))
        except Exception as exc:
            self.oplog.fail(op, str(exc))
            self._forget(branch_id, timeline)
            if isinstance(exc, ArgonError):
                raise
            raise rolled_back("branch creation", exc) from exc
        with self.ctx.tx() as conn:
            conn.execute(update(t.branches).where(t.branches.c.id == branch_id).values(
                state=BranchState.READY.value,
                parent_lsn=str(point.lsn) if at is None or at.lsn is not None else None,
                parent_timestamp=point.timestamp, updated_at=self.ctx.clock()))
        op_ids = [op]
        endpoints: list[Endpoint] = []
        try:
            for ep_req in req.endpoints:
                created = self.endpoints.create(project_id, _under(ep_req, branch_id))
                endpoints.append(created.value)
                op_ids += [o.id for o in created.operations]
        except Exception as exc:
            # All or nothing: a branch whose endpoints could not be made (bad settings, a
            # compute that would not start) is removed, so a retry with its name succeeds.
            self.oplog.fail(op, str(exc))
            self._forget_endpoints(project_id, branch_id)
            self._forget(branch_id, timeline)
            raise
        self.oplog.finish(op)
        logger.info("created branch %s (%s) from %s at %s", branch_id, name, parent.id, point.lsn)
        return self._created(project_id, branch_id, endpoints, op_ids)

    def _forget_endpoints(self, project_id: str, branch_id: str) -> None:
        with self.ctx.tx() as conn:
            eps = list(conn.execute(select(t.endpoints.c.id).where(
                t.endpoints.c.branch_id == branch_id)).scalars())
        for ep in eps:
            try:
                self.endpoints.delete(project_id, ep)   # stops its compute if it started
            except ArgonError as exc:  # the branch row's cascade removes the row anyway
                logger.warning("rolling back branch %s: endpoint %s: %s", branch_id, ep,
                               exc.message)

    def _clone(self, parent_tl: str, child_tl: str, parent_ep: str | None, parent_name: str):  # type: ignore[no-untyped-def]
        # Hold the parent's endpoint so it is neither suspended nor started mid-clone; the
        # parent's own clients keep running (the backup API does not block them).
        if parent_ep is None:
            return self.ctx.storage.branch_timeline(child_tl, parent_tl, None)
        with self.ctx.locks.wait_for(f"ep:{parent_ep}"):
            if self.runtime.running(parent_ep) is None:
                try:
                    return self.ctx.storage.branch_timeline(child_tl, parent_tl, None)
                except Conflict:
                    # e.g. the parent's compute crashed: its directory is not consistent
                    # until Postgres recovers it, so start it and branch it running.
                    logger.info("parent %s needs recovery first; starting it", parent_name)
                    self.runtime.ensure_running(parent_ep)
            spec = self.runtime.spec(parent_ep)
            return self.ctx.storage.branch_timeline(
                child_tl, parent_tl, backup_of(self.ctx.computes, spec))

    def drop_timeline(self, timeline_id: str) -> None:
        """The files of a timeline no branch references any more (deleted, or replaced by
        a restore, and recorded so): files that cannot go now go with the next start's
        storage repair, as after a crash; the change itself is done."""
        try:
            self.ctx.storage.delete_timeline(timeline_id)
        except OSError as e:
            logger.warning("timeline %s stays on disk until the next start: %s", timeline_id, e)

    def _forget(self, branch_id: str, timeline: str) -> None:
        self.ctx.storage.delete_timeline(timeline)
        with self.ctx.tx() as conn:
            conn.execute(delete(t.branches).where(t.branches.c.id == branch_id))

    def _created(self, project_id: str, branch_id: str,
                 endpoints: builtins.list[Endpoint],  # the method list() hides the type
                 op_ids: builtins.list[str]) -> BranchCreated:
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.branches).where(t.branches.c.id == branch_id)).one()
            dbs = conn.execute(select(t.databases).where(t.databases.c.branch_id == branch_id)).all()
            roles = conn.execute(select(t.roles).where(t.roles.c.branch_id == branch_id)).all()
        uris: list[ConnectionUri] = []
        if endpoints:
            for role in roles:
                pw = self.ctx.secrets.open(role.password_encrypted) if role.password_encrypted else None
                for db in dbs:
                    if db.owner_name == role.name:
                        uris.append(connection_uri(endpoints[0].host, role.name, pw, db.name))
        return BranchCreated(self._model(row), endpoints, [database_from_row(d) for d in dbs],
                             [role_from_row(r) for r in roles], self.oplog.get_many(op_ids), uris)

    # -- update / delete / default -------------------------------------------------------

    def update(self, project_id: str, branch_id: str, req: BranchUpdate) -> Mutation[Branch]:
        with self.ctx.tx() as conn:
            row = self.row(conn, project_id, branch_id)
            values: dict[str, object] = {}
            if req.name is not None:
                new = validation.name(req.name, "branch name")
                if new != row.name and conn.execute(select(t.branches.c.id).where(
                        t.branches.c.project_id == project_id, t.branches.c.name == new)).first():
                    raise Conflict(f"branch with name {new!r} already exists")
                values["name"] = new
            if req.protected is not None:
                values["protected"] = bool(req.protected)
            if req.clear_expires_at:
                values["expires_at"] = None
            elif req.expires_at is not None:
                validation_expiry(req.expires_at, self.ctx.clock())
                values["expires_at"] = req.expires_at
            if values:
                conn.execute(update(t.branches).where(t.branches.c.id == row.id).values(
                    updated_at=self.ctx.clock(), **values))
            row = conn.execute(select(t.branches).where(t.branches.c.id == row.id)).one()
        if req.protected is not None:
            self.ctx.ip_allow.invalidate()   # allowed_ips may bind protected branches only
        return Mutation(self._model(row), [])

    def delete(self, project_id: str, branch_id: str) -> Mutation[Branch]:
        with self.ctx.tx() as conn:
            row = self.row(conn, project_id, branch_id)
            if row.is_default:
                raise Conflict(f"branch {row.name} is the project's default branch and cannot "
                               "be deleted; set another branch as default first")
            if row.protected:
                raise Conflict(f"branch {row.name} is protected; unprotect it before deleting")
            children = list(conn.execute(select(t.branches.c.name).where(
                t.branches.c.parent_id == row.id)).scalars())
            if children:
                raise Conflict(f"branch {row.name} has child branches ({', '.join(children)}); "
                               "delete them first")
            eps = list(conn.execute(select(t.endpoints.c.id).where(
                t.endpoints.c.branch_id == row.id)).scalars())
            op = self.oplog.begin(conn, project_id, OperationAction.DELETE_TIMELINE,
                                  branch_id=row.id)
        try:
            with self.ctx.locks.hold(f"branch:{row.id}", what=f"branch {row.name}"):
                for ep in eps:
                    self.runtime.suspend(ep, reason="branch deleted")
                # The row goes with its operation's end, in one commit; the timeline after
                # it: one left by a crash is unreferenced, and the next start removes it.
                self.oplog.finish(op, also=lambda conn: conn.execute(
                    delete(t.branches).where(t.branches.c.id == row.id)))
        except Exception as exc:
            self.oplog.fail(op, str(exc))   # the branch stays, whole; a retry may delete it
            raise
        self.ctx.on_endpoints_changed()
        self.drop_timeline(row.timeline_id)
        self.sizes.pop(row.timeline_id, None)
        logger.info("deleted branch %s (%s)", row.id, row.name)
        return Mutation(self._model(row), self.oplog.get_many([op]))

    def set_default(self, project_id: str, branch_id: str) -> Mutation[Branch]:
        with self.ctx.tx() as conn:
            row = self.row(conn, project_id, branch_id)
            now = self.ctx.clock()
            conn.execute(update(t.branches).where(t.branches.c.project_id == project_id,
                                                  t.branches.c.is_default)
                         .values(is_default=False, updated_at=now))
            conn.execute(update(t.branches).where(t.branches.c.id == row.id)
                         .values(is_default=True, updated_at=now))
            row = conn.execute(select(t.branches).where(t.branches.c.id == row.id)).one()
        self.ctx.ip_allow.invalidate()   # allowed_ips may bind the default branch only
        return Mutation(self._model(row), [])

    # -- schema, restore, time travel (rules live in their own modules) -----------------

    def _pg_version(self, project_id: str) -> int:
        with self.ctx.tx() as conn:
            v = conn.execute(select(t.projects.c.pg_version).where(
                t.projects.c.id == project_id)).scalar()
        if v is None:
            raise NotFound(f"project {project_id!r} not found")
        return int(v)

    def schema(self, project_id: str, branch_id: str, db_name: str,
               lsn: str | None = None, timestamp: datetime | None = None) -> str:
        """``pg_dump --schema-only`` of a database, at the head or at a past point."""
        return branch_schema(self, project_id, branch_id, db_name,
                             parse_point(lsn, timestamp))

    def compare_schema(self, project_id: str, branch_id: str, db_name: str,
                       base_branch_id: str | None = None, lsn: str | None = None,
                       timestamp: datetime | None = None, base_lsn: str | None = None,
                       base_timestamp: datetime | None = None) -> SchemaDiff:
        return compare_schema(self, project_id, branch_id, db_name, base_branch_id,
                              parse_point(lsn, timestamp),
                              parse_point(base_lsn, base_timestamp))

    def restore(self, project_id: str, branch_id: str, req: BranchRestore) -> Mutation[Branch]:
        return Restorer(self).restore(project_id, branch_id, req)

    def reset_to_parent(self, project_id: str, branch_id: str,
                        preserve_under_name: str | None = None) -> Mutation[Branch]:
        with self.ctx.tx() as conn:
            row = self.row(conn, project_id, branch_id)
        if row.parent_id is None:
            raise InvalidInput(f"branch {row.name} has no parent to reset from")
        return self.restore(project_id, row.id, BranchRestore(
            source_branch_id=row.parent_id, preserve_under_name=preserve_under_name))

    def ephemeral_compute_at(self, branch_or_endpoint: str, lsn: str | None = None,
                             timestamp: datetime | None = None) -> EphemeralCompute:
        """A temporary read-only compute at a past point of a branch (by branch or
        endpoint id), for time-travel queries; stop it with ``release_ephemeral``."""
        return ephemeral_at(self, branch_or_endpoint, parse_point(lsn, timestamp))

    def release_ephemeral(self, compute_id: str) -> bool:
        return self.tt.release_ephemeral(compute_id)


def _copy_roles_and_databases(conn: Connection, parent_id: str, child_id: str, now) -> None:  # type: ignore[no-untyped-def]
    for r in conn.execute(select(t.roles).where(t.roles.c.branch_id == parent_id)).all():
        conn.execute(t.roles.insert().values(
            branch_id=child_id, name=r.name, protected=r.protected,
            scram_verifier=r.scram_verifier, password_encrypted=r.password_encrypted,
            created_at=now, updated_at=now))
    for d in conn.execute(select(t.databases).where(t.databases.c.branch_id == parent_id)).all():
        conn.execute(t.databases.insert().values(
            branch_id=child_id, name=d.name, owner_name=d.owner_name, created_at=now,
            updated_at=now))
    sql_roles.copy(conn, parent_id, child_id, now)   # roles made with SQL come along too


def _under(req: EndpointCreate, branch_id: str) -> EndpointCreate:
    return replace(req, branch_id=branch_id)


def validation_expiry(expires_at: datetime, now: datetime) -> None:
    if expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone (e.g. 2026-11-25T10:00:00Z)")
    if expires_at <= now:
        raise InvalidInput(f"expires_at {expires_at.isoformat()} is in the past; give a "
                           "future time")
