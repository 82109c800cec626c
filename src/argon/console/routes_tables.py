"""The tables view's routes: schemas and tables, one table's columns and indexes, a page
of rows (sorted), and editing one cell by primary key (the UPDATE it ran comes back)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from argon.api.deps import ServicesDep
from argon.api.schemas.common import ID_PATTERN, RequestModel
from argon.control.table_browser import TableRef

router = APIRouter(tags=["Console"])
ProjectId = Annotated[str, Path(pattern=ID_PATTERN)]
BranchRef = Annotated[str, Path(min_length=1, max_length=256)]
Name = Annotated[str, Path(min_length=1, max_length=63)]
_BASE = "/projects/{project_id}/branches/{branch_id}"


class CellUpdate(RequestModel):
    database: str = Field(min_length=1, max_length=64)
    role: str | None = Field(default=None, max_length=64)
    key: dict[str, Any]
    column: str = Field(min_length=1, max_length=63)
    value: Any = None


@router.get(_BASE + "/tables", operation_id="consoleListTables")
async def list_tables(services: ServicesDep, project_id: ProjectId, branch_id: BranchRef,
                      database: str, role: str | None = None) -> dict[str, Any]:
    schemas = await run_in_threadpool(services.tables.tables, project_id, branch_id,
                                      database, role)
    return {"schemas": schemas}


@router.get(_BASE + "/tables/{schema}/{table}", operation_id="consoleDescribeTable")
async def describe_table(services: ServicesDep, project_id: ProjectId, branch_id: BranchRef,
                         schema: Name, table: Name, database: str,
                         role: str | None = None) -> dict[str, Any]:
    ref = TableRef(project_id, branch_id, database, role, schema, table)
    return asdict(await run_in_threadpool(services.tables.describe, ref))


@router.get(_BASE + "/tables/{schema}/{table}/rows", operation_id="consoleTableRows")
async def table_rows(services: ServicesDep, project_id: ProjectId, branch_id: BranchRef,
                     schema: Name, table: Name, database: str, role: str | None = None,
                     limit: int = 50, offset: int = 0, sort: str | None = None,
                     order: Literal["asc", "desc"] = "asc") -> dict[str, Any]:
    ref = TableRef(project_id, branch_id, database, role, schema, table)
    page = await run_in_threadpool(lambda: services.tables.rows(
        ref, limit=limit, offset=offset, sort=sort, order=order))
    return asdict(page)


@router.patch(_BASE + "/tables/{schema}/{table}/rows", operation_id="consoleUpdateCell")
async def update_cell(services: ServicesDep, project_id: ProjectId, branch_id: BranchRef,
                      schema: Name, table: Name, body: CellUpdate) -> dict[str, Any]:
    ref = TableRef(project_id, branch_id, body.database, body.role, schema, table)
    edit = await run_in_threadpool(services.tables.update_cell, ref, body.key, body.column,
                                   body.value)
    return asdict(edit)
