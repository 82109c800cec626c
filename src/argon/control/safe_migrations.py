"""Safe schema migrations and query tuning on a temporary branch (the MCP server's
``prepare_database_migration`` / ``complete_database_migration`` flow).

Prepare: a temporary branch is made from the target branch's head (with a read-write
compute), the SQL runs there as the database's owner, and the result and the schema diff
against the target are returned; the target is not touched.  Complete: the same SQL runs
on the target as one simple-protocol query, which Postgres runs as one implicit
transaction (all or nothing), then the temporary branch is deleted.  A failure in either
step leaves the target as it was and says why.  Prepared migrations are rows of the
``safe_migrations`` table, so ``complete`` works after an Argon restart; one never
completed expires after ``ttl`` (its branch carries ``expires_at`` and is deleted at the
next prepare/complete after that).  A temporary branch left without its row (a crash
between making the branch and recording it) is removed by start-up repair
(``orphan_branches``).
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from argon.control import key_scope
from argon.control.requests import BranchCreate, EndpointCreate
from argon.control.sql_runner import SqlOutcome, SqlRequest
from argon.errors import ArgonError, InvalidInput, NotFound
from argon.meta import tables as t

if TYPE_CHECKING:
    from argon.control.services import Services

logger = logging.getLogger(__name__)

DEFAULT_TTL = timedelta(hours=24)
# how prepare names its temporary branches; repair recognises them by it
TEMP_BRANCH_RE = re.compile(r"^(migration|tuning)_\d{8}T\d{6}_[0-9a-f]{6}$")


@dataclass(frozen=True)
class PreparedMigration:
    id: str
    project_id: str
    target_branch_id: str
    database: str
    sql: str
    temp_branch_id: str
    temp_branch_name: str
    created_at: datetime
    role: str | None = None


@dataclass(frozen=True)
class Prepared:
    migration: PreparedMigration
    outcome: SqlOutcome
    schema_diff: str


@dataclass(frozen=True)
class Completed:
    migration: PreparedMigration
    outcome: SqlOutcome
    deleted_branch: bool


class MigrationFailed(ArgonError):
    """The SQL failed; ``outcome`` carries Postgres' error."""

    def __init__(self, message: str, outcome: SqlOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


class SafeMigrations:
    def __init__(self, services: Services, ttl: timedelta = DEFAULT_TTL) -> None:
        self.s, self.ttl = services, ttl

    def default_database(self, project_id: str, branch_id: str) -> str:
        """Neon's rule: ``neondb`` if the branch has it, else its first database."""
        names = [d.name for d in self.s.databases.list(project_id, branch_id)]
        if not names:
            raise NotFound(f"branch {branch_id} has no database")
        return "neondb" if "neondb" in names else names[0]

    def prepare(self, project_id: str, sql: str, *, database: str | None = None,
                branch_id: str | None = None, role: str | None = None,
                kind: str = "migration") -> Prepared:
        if not sql.strip():
            raise InvalidInput("the migration SQL is empty")
        self.expire()
        target = self.s.branches.get(project_id, branch_id or
                                     self.s.projects.get(project_id).default_branch_id)
        database = database or self.default_database(project_id, target.id)
        self.s.databases.get(project_id, target.id, database)   # 404 before any branch
        now = self.s.ctx.clock()
        mid = uuid.uuid4().hex
        name = f"{kind}_{now:%Y%m%dT%H%M%S}_{mid[:6]}"
        created = self.s.branches.create(project_id, BranchCreate(
            name=name, parent_id=target.id, expires_at=now + self.ttl,
            endpoints=[EndpointCreate(type="read_write")]))
        temp = created.branch
        mig = PreparedMigration(mid, project_id, target.id, database, sql, temp.id, temp.name,
                                now, role)
        try:
            outcome = self.s.sql.run(SqlRequest(project_id, temp.id, database, sql, role=role))
            if outcome.error is not None:
                raise MigrationFailed(f"the {kind} failed on the temporary branch, which was "
                                      f"deleted; {target.name} is unchanged: "
                                      f"{outcome.error.message}", outcome)
            diff = self.s.branches.compare_schema(project_id, temp.id, database,
                                                  base_branch_id=target.id).diff
            with self.s.ctx.tx() as conn:
                conn.execute(t.safe_migrations.insert().values(
                    id=mig.id, project_id=mig.project_id,
                    target_branch_id=mig.target_branch_id, database=mig.database, sql=mig.sql,
                    temp_branch_id=mig.temp_branch_id, temp_branch_name=mig.temp_branch_name,
                    role=mig.role, created_at=mig.created_at))
        except Exception:
            self._drop_branch(mig)
            raise
        return Prepared(mig, outcome, diff)

    def get(self, migration_id: str) -> PreparedMigration:
        self.expire()
        with self.s.ctx.tx() as conn:
            row = conn.execute(select(t.safe_migrations).where(
                t.safe_migrations.c.id == migration_id)).first()
        if row is None:
            raise NotFound(f"migration {migration_id!r} not found (never prepared, "
                           "already completed or expired)")
        mig = _from_row(row)
        key_scope.check_project(mig.project_id)   # a project-scoped key: its project only
        return mig

    def complete(self, migration_id: str, *, sql: str | None = None,
                 apply: bool = True, target_branch_id: str | None = None,
                 delete_branch: bool = True) -> Completed:
        """Run the prepared SQL (or ``sql``, e.g. tuning's chosen statements) on the target in
        one transaction, then delete the temporary branch."""
        mig = self.get(migration_id)
        if target_branch_id:
            mig = replace(mig, target_branch_id=self.s.branches.get(
                mig.project_id, target_branch_id).id)
        outcome = None
        if apply:
            text = sql if sql is not None else mig.sql
            outcome = self.s.sql.run(SqlRequest(mig.project_id, mig.target_branch_id,
                                                mig.database, text, role=mig.role))
            if outcome.error is not None:
                # nothing was applied (one implicit transaction); keep it to retry or inspect
                raise MigrationFailed("the migration failed on the target branch and was rolled "
                                      f"back; nothing changed there: {outcome.error.message}",
                                      outcome)
        self._forget(migration_id)
        deleted = self._drop_branch(mig) if delete_branch else False
        return Completed(mig, outcome, deleted)  # type: ignore[arg-type]

    def _forget(self, migration_id: str) -> bool:
        """Delete the row; False when another caller already did (complete vs expiry)."""
        with self.s.ctx.tx() as conn:
            gone = conn.execute(t.safe_migrations.delete().where(
                t.safe_migrations.c.id == migration_id)).rowcount
        return bool(gone)

    def expire(self) -> None:
        cutoff = self.s.ctx.clock() - self.ttl
        with self.s.ctx.tx() as conn:
            rows = conn.execute(select(t.safe_migrations).where(
                t.safe_migrations.c.created_at < cutoff)).all()
        old = [m for m in (_from_row(r) for r in rows) if self._forget(m.id)]
        # housekeeping for every project, whatever key's request happened to trigger it
        with key_scope.unrestricted():
            for m in old:
                logger.info("migration %s expired; deleting branch %s", m.id,
                            m.temp_branch_name)
                self._drop_branch(m)

    def _drop_branch(self, mig: PreparedMigration) -> bool:
        try:
            self.s.branches.delete(mig.project_id, mig.temp_branch_id)
            return True
        except NotFound:
            return False
        except ArgonError as exc:
            logger.warning("could not delete temporary branch %s: %s", mig.temp_branch_name,
                           exc.message)
            return False


def _from_row(r: Any) -> PreparedMigration:
    return PreparedMigration(r.id, r.project_id, r.target_branch_id, r.database, r.sql,
                             r.temp_branch_id, r.temp_branch_name, r.created_at, r.role)


def orphan_branches(conn: Any) -> list[Any]:
    """Temporary migration branches (by name, with an expiry) that no prepared migration
    row claims: what a crash in the middle of ``prepare`` leaves behind."""
    claimed = set(conn.execute(select(t.safe_migrations.c.temp_branch_id)).scalars())
    rows = conn.execute(select(t.branches.c.id, t.branches.c.project_id, t.branches.c.name)
                        .where(t.branches.c.expires_at.is_not(None),
                               t.branches.c.parent_id.is_not(None))).all()
    return [r for r in rows if TEMP_BRANCH_RE.match(r.name) and r.id not in claimed]
