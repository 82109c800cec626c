"""Databases and roles of a branch, kept consistent with what is inside its Postgres.

Changes made through Argon run as SQL in the branch's compute (started if needed) and
are then recorded.  Objects created with plain SQL appear in listings too: when the
compute runs, a listing first reconciles the recorded rows with ``pg_roles`` and
``pg_database``.
"""

from __future__ import annotations

import logging

import psycopg
from sqlalchemy import Connection, delete, select, update

from argon.control import ids, sql_roles, sqlexec, validation
from argon.control.context import ControlContext
from argon.control.endpoints import EndpointService
from argon.control.models import Database, Mutation, OperationAction, Role
from argon.control.operations import OperationLog
from argon.control.requests import DatabaseCreate, DatabaseUpdate
from argon.control.rows import database_from_row, role_from_row
from argon.control.runtime import EndpointRuntime
from argon.control.lookup import branch_row
from argon.errors import Conflict, NotFound, Unavailable
from argon.meta import tables as t
from argon.pg.scram import make_verifier

logger = logging.getLogger(__name__)


class _BranchScoped:
    def __init__(self, ctx: ControlContext, oplog: OperationLog, runtime: EndpointRuntime,
                 endpoints: EndpointService) -> None:
        self.ctx = ctx
        self.oplog = oplog
        self.runtime = runtime
        self.endpoints = endpoints

    def _branch(self, conn: Connection, project_id: str, branch_ref: str) -> str:
        return str(branch_row(conn, project_id, branch_ref).id)

    def _branch_id(self, project_id: str, branch_ref: str) -> str:
        with self.ctx.tx() as conn:
            return self._branch(conn, project_id, branch_ref)

    def _sync(self, branch_id: str) -> None:
        """Reconcile rows with the running compute; skipped while it sleeps."""
        try:
            ep = self.endpoints.primary_endpoint_id(branch_id)
        except Conflict:
            return
        if self.runtime.running(ep) is None:
            return
        with self.ctx.computes.connect(self.runtime.spec(ep)) as pg:
            roles = set(sqlexec.list_roles(pg))
            dbs = dict(sqlexec.list_databases(pg))
        now = self.ctx.clock()
        with self.ctx.tx() as conn:
            have_roles = set(conn.execute(select(t.roles.c.name).where(
                t.roles.c.branch_id == branch_id)).scalars())
            for name in roles - have_roles:
                conn.execute(t.roles.insert().values(branch_id=branch_id, name=name,
                                                     protected=False, created_at=now,
                                                     updated_at=now))
            if have_roles - roles:
                conn.execute(delete(t.roles).where(t.roles.c.branch_id == branch_id,
                                                   t.roles.c.name.in_(have_roles - roles)))
            have_dbs = dict(conn.execute(select(t.databases.c.name, t.databases.c.owner_name)
                                         .where(t.databases.c.branch_id == branch_id)).all())
            for name, owner in dbs.items():
                if name not in have_dbs:
                    conn.execute(t.databases.insert().values(branch_id=branch_id, name=name,
                                                             owner_name=owner, created_at=now,
                                                             updated_at=now))
                elif have_dbs[name] != owner:
                    conn.execute(update(t.databases).where(
                        t.databases.c.branch_id == branch_id, t.databases.c.name == name)
                        .values(owner_name=owner, updated_at=now))
            gone = set(have_dbs) - set(dbs)
            if gone:
                conn.execute(delete(t.databases).where(t.databases.c.branch_id == branch_id,
                                                       t.databases.c.name.in_(gone)))
        if roles != have_roles:
            self.ctx.events.roles_changed(branch_id)

    def _run(self, project_id: str, branch_id: str, fn) -> str:  # type: ignore[no-untyped-def]
        """Run ``fn(pg_conn)`` on the branch's compute as an apply_config operation."""
        ep = self.endpoints.primary_endpoint_id(branch_id)
        with self.ctx.tx() as conn:
            op = self.oplog.begin(conn, project_id, OperationAction.APPLY_CONFIG,
                                  branch_id=branch_id, endpoint_id=ep)
        try:
            with self.runtime.connect(ep) as pg:
                fn(pg)
        except Exception as exc:
            self.oplog.fail(op, getattr(exc, "message", str(exc)))
            raise
        self.oplog.finish(op)
        return op


class DatabaseService(_BranchScoped):
    def list(self, project_id: str, branch_id: str) -> list[Database]:
        bid = self._branch_id(project_id, branch_id)
        self._sync(bid)
        with self.ctx.tx() as conn:
            rows = conn.execute(select(t.databases).where(t.databases.c.branch_id == bid)
                                .order_by(t.databases.c.name)).all()
        return [database_from_row(r) for r in rows]

    def get(self, project_id: str, branch_id: str, name: str) -> Database:
        bid = self._branch_id(project_id, branch_id)
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.databases).where(
                t.databases.c.branch_id == bid, t.databases.c.name == name)).first()
        if row is None:
            raise NotFound(f"database {name!r} not found on branch {branch_id}")
        return database_from_row(row)

    def create(self, project_id: str, branch_id: str, req: DatabaseCreate) -> Mutation[Database]:
        name = validation.pg_identifier(req.name, "database name")
        owner = validation.pg_identifier(req.owner_name, "owner_name")
        bid = self._branch_id(project_id, branch_id)
        with self.ctx.tx() as conn:
            if conn.execute(select(t.databases.c.id).where(
                    t.databases.c.branch_id == bid, t.databases.c.name == name)).first():
                raise Conflict(f"database {name!r} already exists")
        op = self._run(project_id, bid, lambda pg: sqlexec.create_database(pg, name, owner))
        now = self.ctx.clock()
        with self.ctx.tx() as conn:
            conn.execute(t.databases.insert().values(branch_id=bid, name=name, owner_name=owner,
                                                     created_at=now, updated_at=now))
        return Mutation(self.get(project_id, bid, name), self.oplog.get_many([op]))

    def update(self, project_id: str, branch_id: str, name: str,
               req: DatabaseUpdate) -> Mutation[Database]:
        current = self.get(project_id, branch_id, name)
        new_name = validation.pg_identifier(req.name, "database name") if req.name else None
        new_owner = validation.pg_identifier(req.owner_name, "owner_name") if req.owner_name else None
        op = self._run(project_id, current.branch_id,
                       lambda pg: sqlexec.alter_database(pg, name, new_name, new_owner))
        with self.ctx.tx() as conn:
            conn.execute(update(t.databases).where(t.databases.c.id == current.id).values(
                name=new_name or current.name, owner_name=new_owner or current.owner_name,
                updated_at=self.ctx.clock()))
        return Mutation(self.get(project_id, current.branch_id, new_name or name),
                        self.oplog.get_many([op]))

    def delete(self, project_id: str, branch_id: str, name: str) -> Mutation[Database]:
        current = self.get(project_id, branch_id, name)
        op = self._run(project_id, current.branch_id, lambda pg: sqlexec.drop_database(pg, name))
        with self.ctx.tx() as conn:
            conn.execute(delete(t.databases).where(t.databases.c.id == current.id))
        return Mutation(current, self.oplog.get_many([op]))


class RoleService(_BranchScoped):
    def list(self, project_id: str, branch_id: str) -> list[Role]:
        bid = self._branch_id(project_id, branch_id)
        self._sync(bid)
        with self.ctx.tx() as conn:
            rows = conn.execute(select(t.roles).where(t.roles.c.branch_id == bid)
                                .order_by(t.roles.c.name)).all()
        return [role_from_row(r) for r in rows]

    def _get_row(self, project_id: str, branch_id: str, name: str):  # type: ignore[no-untyped-def]
        bid = self._branch_id(project_id, branch_id)
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.roles).where(t.roles.c.branch_id == bid,
                                                     t.roles.c.name == name)).first()
        if row is None:
            raise NotFound(f"role {name!r} not found on branch {branch_id}")
        return row

    def get(self, project_id: str, branch_id: str, name: str) -> Role:
        return role_from_row(self._get_row(project_id, branch_id, name))

    def create(self, project_id: str, branch_id: str, name: str,
               no_login: bool = False) -> Mutation[Role]:
        name = validation.pg_identifier(name, "role name")
        if name in sqlexec.SYSTEM_ROLES:
            raise Conflict(f"role name {name!r} is reserved by the platform")
        bid = self._branch_id(project_id, branch_id)
        with self.ctx.tx() as conn:
            if conn.execute(select(t.roles.c.name).where(t.roles.c.branch_id == bid,
                                                         t.roles.c.name == name)).first():
                raise Conflict(f"role {name!r} already exists")
        password = None if no_login else ids.role_password()
        verifier = str(make_verifier(password)) if password else None
        op = self._run(project_id, bid,
                       lambda pg: sqlexec.create_role(pg, name, verifier, login=not no_login))
        now = self.ctx.clock()
        with self.ctx.tx() as conn:
            conn.execute(t.roles.insert().values(
                branch_id=bid, name=name, protected=False, scram_verifier=verifier,
                password_encrypted=self.ctx.secrets.seal(password) if password else None,
                created_at=now, updated_at=now))
        self.ctx.events.roles_changed(bid)
        row = self._get_row(project_id, bid, name)
        return Mutation(role_from_row(row, password), self.oplog.get_many([op]))

    def delete(self, project_id: str, branch_id: str, name: str) -> Mutation[Role]:
        row = self._get_row(project_id, branch_id, name)
        op = self._run(project_id, row.branch_id, lambda pg: sqlexec.drop_role(pg, name))
        with self.ctx.tx() as conn:
            conn.execute(delete(t.roles).where(t.roles.c.branch_id == row.branch_id,
                                               t.roles.c.name == name))
            conn.execute(delete(t.sql_role_secrets).where(
                t.sql_role_secrets.c.branch_id == row.branch_id,
                t.sql_role_secrets.c.name == name))
        self.ctx.events.roles_changed(row.branch_id)
        return Mutation(role_from_row(row), self.oplog.get_many([op]))

    def reveal_password(self, project_id: str, branch_id: str, name: str) -> str:
        row = self._get_row(project_id, branch_id, name)
        if not row.password_encrypted:
            raise NotFound(f"role {name!r} has no password Argon can reveal (it was created "
                           "with SQL or without login); reset its password to get one")
        return self.ctx.secrets.open(row.password_encrypted)

    def reset_password(self, project_id: str, branch_id: str, name: str) -> Mutation[Role]:
        row = self._get_row(project_id, branch_id, name)
        password = ids.role_password()
        verifier = str(make_verifier(password))
        op = self._run(project_id, row.branch_id,
                       lambda pg: sqlexec.set_password(pg, name, verifier))
        with self.ctx.tx() as conn:
            conn.execute(update(t.roles).where(t.roles.c.branch_id == row.branch_id,
                                               t.roles.c.name == name).values(
                scram_verifier=verifier, password_encrypted=self.ctx.secrets.seal(password),
                updated_at=self.ctx.clock()))
        self.ctx.events.roles_changed(row.branch_id)
        return Mutation(role_from_row(self._get_row(project_id, row.branch_id, name), password),
                        self.oplog.get_many([op]))

    def verifier(self, endpoint_id: str, role: str) -> str | None:
        """The SCRAM verifier the proxy checks a client against (None: no such role).

        From the metadata: roles Argon made, then roles made with SQL as last synced
        from the branch's Postgres.  A role not synced yet is looked up in the compute
        only if it is already running: a cheap query, never a start, so a client that
        has not authenticated cannot wake a compute by sending made-up user names.
        ``endpoint_id`` may also be a branch id: time-travel connection strings name the
        branch (``br-...``) where others name the endpoint.
        """
        with self.ctx.tx() as conn:
            if endpoint_id.startswith("br-"):
                branch_id = conn.execute(select(t.branches.c.id).where(
                    t.branches.c.id == endpoint_id)).scalar()
                if branch_id is None:
                    raise NotFound(f"branch {endpoint_id!r} not found")
            else:
                branch_id = conn.execute(select(t.endpoints.c.branch_id).where(
                    t.endpoints.c.id == endpoint_id)).scalar()
                if branch_id is None:
                    raise NotFound(f"endpoint {endpoint_id!r} not found")
            known = conn.execute(select(t.roles.c.scram_verifier).where(
                t.roles.c.branch_id == branch_id, t.roles.c.name == role)).scalar()
            if known:
                return str(known)
            synced = sql_roles.lookup(conn, branch_id, role)
        if synced:
            return str(synced)
        if endpoint_id.startswith("br-"):
            return None
        try:
            spec = self.runtime.spec(endpoint_id)
            if self.ctx.computes.pid(spec) is None:
                return None
            with self.ctx.computes.connect(spec) as pg:
                return sql_roles.one_login_secret(pg, role)
        except (Unavailable, psycopg.Error) as exc:   # stopped meanwhile
            logger.info("role lookup in compute %s skipped: %s", endpoint_id, exc)
            return None
