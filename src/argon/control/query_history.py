"""The SQL editor's history of past queries, kept per project and bounded.

Each run through ``SqlRunner`` adds one row; only the newest ``KEEP_PER_PROJECT`` rows of
a project are kept (older ones are deleted as new ones arrive), and a query's text is
kept up to ``MAX_TEXT`` characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select

from argon.control import lookup
from argon.control.context import ControlContext
from argon.errors import InvalidInput
from argon.meta import tables as t

if TYPE_CHECKING:
    from argon.control.sql_runner import SqlOutcome, SqlRequest

KEEP_PER_PROJECT = 200
MAX_TEXT = 20_000


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    branch_id: str
    database: str
    role: str
    query: str
    mode: str
    at_time: datetime | None
    status: str
    error: str | None
    row_count: int | None
    duration_ms: float
    started_at: datetime


class QueryHistory:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx

    def record(self, req: SqlRequest, out: SqlOutcome, started: datetime) -> None:
        status = "ok" if out.error is None else (
            "cancelled" if out.error.sqlstate == "57014" else "error")
        rows = sum(r.row_count or 0 for r in out.results) if out.results else None
        with self.ctx.tx() as conn:
            conn.execute(t.query_history.insert().values(
                project_id=req.project_id, branch_id=req.branch_id, database=req.database,
                role=out.role, query=req.query[:MAX_TEXT], mode=req.explain or "run",
                at_time=req.timestamp, status=status,
                error=out.error.message if out.error is not None else None,
                row_count=rows, duration_ms=out.duration_ms, started_at=started))
            # keep the newest rows only: everything below the KEEP-th newest id goes
            floor = conn.execute(select(t.query_history.c.id).where(
                t.query_history.c.project_id == req.project_id)
                .order_by(t.query_history.c.id.desc())
                .offset(KEEP_PER_PROJECT - 1).limit(1)).scalar()
            if floor is not None:
                conn.execute(delete(t.query_history).where(
                    t.query_history.c.project_id == req.project_id,
                    t.query_history.c.id < floor))

    def list(self, project_id: str, limit: int = 50,
             branch_id: str | None = None) -> list[HistoryEntry]:
        if not 1 <= limit <= KEEP_PER_PROJECT:
            raise InvalidInput(f"limit must be from 1 to {KEEP_PER_PROJECT}, not {limit}")
        h = t.query_history
        with self.ctx.tx() as conn:
            lookup.require_project(conn, project_id)
            q = select(h).where(h.c.project_id == project_id)
            if branch_id is not None:
                q = q.where(h.c.branch_id == branch_id)
            rows = conn.execute(q.order_by(h.c.id.desc()).limit(limit)).all()
        return [HistoryEntry(id=r.id, branch_id=r.branch_id, database=r.database, role=r.role,
                             query=r.query, mode=r.mode, at_time=r.at_time, status=r.status,
                             error=r.error, row_count=r.row_count, duration_ms=r.duration_ms,
                             started_at=r.started_at) for r in rows]

    def count(self, project_id: str) -> int:
        with self.ctx.tx() as conn:
            return int(conn.execute(select(func.count()).select_from(t.query_history).where(
                t.query_history.c.project_id == project_id)).scalar() or 0)
