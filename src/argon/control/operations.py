"""Operations: every mutation is recorded with a status and a duration, as in Neon."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, select, update

from argon.control import ids
from argon.control.context import ControlContext
from argon.control.models import Operation, OperationAction, OperationStatus, Page
from argon.control.rows import operation_from_row
from argon.control.lookup import require_project
from argon.errors import ArgonError, NotFound
from argon.logs import request_id
from argon.meta import tables as t

logger = logging.getLogger(__name__)

MAX_LIMIT = 1000


def rolled_back(what: str, exc: Exception) -> ArgonError:
    """The error for an unexpected failure of ``what``, already undone.  The user learns
    that, and where to look; the cause (its text may quote SQL, paths or a traceback's
    worth of detail) goes to Argon's log, and stays the ``__cause__`` (a full disk maps
    to 507 through it)."""
    logger.error("%s failed and was rolled back", what, exc_info=exc)
    err = ArgonError(f"{what} failed and was rolled back (an internal error: "
                     f"{type(exc).__name__}); Argon's log has the details under request id "
                     f"{request_id.get()}")
    err.__cause__ = exc
    return err


class OperationLog:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx

    def begin(self, conn: Connection, project_id: str, action: OperationAction, *,
              branch_id: str | None = None, endpoint_id: str | None = None,
              status: OperationStatus = OperationStatus.RUNNING) -> str:
        op_id = ids.operation_id()
        now = self.ctx.clock()
        conn.execute(t.operations.insert().values(
            id=op_id, project_id=project_id, branch_id=branch_id, endpoint_id=endpoint_id,
            action=action.value, status=status.value, error=None, failures_count=0,
            created_at=now, updated_at=now, total_duration_ms=0))
        # claimed while it runs: a leader's repair leaves a live process's work alone
        self.ctx.locks.claim(f"op:{op_id}")
        return op_id

    def _close(self, op_id: str, status: OperationStatus, error: str | None,
               also: Callable[[Connection], object] | None) -> None:
        try:
            self._settle(op_id, status, error, also)
        finally:   # released once settled: no moment when it is unfinished and unclaimed
            self.ctx.locks.release_claim(f"op:{op_id}")

    def _settle(self, op_id: str, status: OperationStatus, error: str | None,
                also: Callable[[Connection], object] | None) -> None:
        now = self.ctx.clock()
        with self.ctx.tx() as conn:
            if also is not None:
                also(conn)
            row = conn.execute(select(t.operations.c.created_at)
                               .where(t.operations.c.id == op_id)).first()
            if row is None:
                return
            duration = int((now - row.created_at).total_seconds() * 1000)
            values: dict[str, object] = {"status": status.value, "updated_at": now,
                                         "total_duration_ms": duration, "error": error}
            if status is OperationStatus.FAILED:
                values["failures_count"] = t.operations.c.failures_count + 1
            conn.execute(update(t.operations).where(t.operations.c.id == op_id).values(**values))

    def finish(self, op_id: str, also: Callable[[Connection], object] | None = None) -> None:
        """The operation is done; ``also`` writes what it made in the same transaction,
        so that no crash can leave one of the two without the other."""
        self._close(op_id, OperationStatus.FINISHED, None, also)

    def fail(self, op_id: str, error: str,
             also: Callable[[Connection], object] | None = None) -> None:
        """The operation failed; ``also`` (e.g. a state put back) commits with it."""
        logger.warning("operation %s failed: %s", op_id, error)
        self._close(op_id, OperationStatus.FAILED, error, also)

    def get_many(self, op_ids: list[str]) -> list[Operation]:
        if not op_ids:
            return []
        with self.ctx.tx() as conn:
            rows = conn.execute(select(t.operations).where(t.operations.c.id.in_(op_ids))).all()
        by_id = {r.id: operation_from_row(r) for r in rows}
        return [by_id[i] for i in op_ids if i in by_id]


class OperationService:
    """Read side of operations for the interfaces."""

    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx

    def list(self, project_id: str, cursor: str | None = None,
             limit: int | None = None) -> Page[Operation]:
        limit = min(max(limit or 10, 1), MAX_LIMIT)
        q = (select(t.operations).where(t.operations.c.project_id == project_id)
             .order_by(t.operations.c.created_at.desc(), t.operations.c.id.desc()))
        if cursor:
            with self.ctx.tx() as conn:
                anchor = conn.execute(select(t.operations.c.created_at).where(
                    t.operations.c.id == cursor)).first()
            if anchor is not None:
                q = q.where(t.operations.c.created_at < anchor.created_at)
        with self.ctx.tx() as conn:
            require_project(conn, project_id)
            rows = conn.execute(q.limit(limit)).all()
        items = [operation_from_row(r) for r in rows]
        return Page(items, items[-1].id if len(items) == limit else None)

    def get(self, project_id: str, operation_id: str) -> Operation:
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.operations).where(
                t.operations.c.id == operation_id,
                t.operations.c.project_id == project_id)).first()
        if row is None:
            raise NotFound(f"operation {operation_id!r} not found in project {project_id!r}")
        return operation_from_row(row)

