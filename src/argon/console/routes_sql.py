"""The SQL editor's routes: run (with EXPLAIN and time travel), cancel, history.

``POST /api/v2/console/projects/{id}/branches/{branch}/sql`` answers 200 with the
results or with the database's error (SQLSTATE, message, position): the statement ran
and failed, the request itself was good.  Unknown branches, databases or roles, and bad
limits, are 404/400 with Neon's ``{code, message}``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from argon.api.deps import ServicesDep
from argon.api.schemas.common import ID_PATTERN, RequestModel
from argon.control.sql_runner import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ROWS,
    DEFAULT_TIMEOUT_MS,
    SqlRequest,
)
from argon.errors import InvalidInput

router = APIRouter(tags=["Console"])
ProjectId = Annotated[str, Path(pattern=ID_PATTERN)]
BranchRef = Annotated[str, Path(min_length=1, max_length=256)]


class SqlRun(RequestModel):
    query: str
    database: str = Field(min_length=1, max_length=64)
    role: str | None = Field(default=None, max_length=64)
    explain: Literal["plan", "analyze"] | None = None
    timestamp: datetime | None = None
    query_id: str | None = Field(default=None, max_length=64)
    max_rows: int = DEFAULT_MAX_ROWS
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_ms: int = DEFAULT_TIMEOUT_MS


class SqlCancel(RequestModel):
    query_id: str = Field(min_length=1, max_length=64)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


@router.post("/projects/{project_id}/branches/{branch_id}/sql", operation_id="consoleRunSql")
async def run_sql(services: ServicesDep, project_id: ProjectId, branch_id: BranchRef,
                  body: SqlRun) -> dict[str, Any]:
    if body.timestamp is not None and body.timestamp.tzinfo is None:
        raise InvalidInput("timestamp needs a time zone, e.g. 2026-11-25T10:00:00Z")
    req = SqlRequest(project_id=project_id, branch_id=branch_id, database=body.database,
                     query=body.query, role=body.role, explain=body.explain,
                     timestamp=body.timestamp, query_id=body.query_id, max_rows=body.max_rows,
                     max_bytes=body.max_bytes, timeout_ms=body.timeout_ms)
    out = await run_in_threadpool(services.sql.run, req)
    data = asdict(out)
    data["at_time"] = _iso(out.at_time)
    return data


@router.post("/projects/{project_id}/sql/cancel", operation_id="consoleCancelSql")
async def cancel_sql(services: ServicesDep, project_id: ProjectId,
                     body: SqlCancel) -> dict[str, Any]:
    cancelled = await run_in_threadpool(services.sql.cancel, project_id, body.query_id)
    return {"query_id": body.query_id, "cancelled": cancelled}


@router.get("/projects/{project_id}/sql/history", operation_id="consoleSqlHistory")
async def sql_history(services: ServicesDep, project_id: ProjectId, limit: int = 50,
                      branch_id: str | None = None) -> dict[str, Any]:
    rows = await run_in_threadpool(services.query_history.list, project_id, limit, branch_id)
    return {"history": [{**asdict(r), "at_time": _iso(r.at_time),
                         "started_at": _iso(r.started_at)} for r in rows]}
