"""Tag ``Branch``: branches themselves (databases and roles have their own modules)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Query
from starlette.concurrency import run_in_threadpool

from argon.api import mapping as mp
from argon.api.deps import ServicesDep
from argon.api.schemas import branches as wb
from argon.api.schemas.common import ID_PATTERN, CursorPagination
from argon.api.schemas.endpoints import EndpointsResponse

router = APIRouter(tags=["Branch"])
ProjectId = Annotated[str, Path(pattern=ID_PATTERN)]
BranchId = Annotated[str, Path(pattern=ID_PATTERN)]
_RESP = {"response_model_exclude_none": True}
_BASE = "/projects/{project_id}/branches"


@router.get(_BASE, operation_id="listProjectBranches", response_model=wb.BranchesResponse,
            **_RESP)
async def list_project_branches(
    services: ServicesDep, project_id: ProjectId,
    search: str | None = None,
    sort_by: Literal["name", "created_at", "updated_at"] = "updated_at",
    cursor: str | None = None,
    sort_order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int | None, Query(ge=1)] = None,
    include_deleted: bool = False,
) -> wb.BranchesResponse:
    """Branches of a project, filtered by ``search``; the order is the services' own
    (``sort_by``/``sort_order`` are accepted and echoed)."""
    page = await run_in_threadpool(services.branches.list, project_id, search=search,
                                   cursor=cursor, limit=limit)
    return wb.BranchesResponse(
        branches=[mp.branch(b) for b in page.items],
        pagination=CursorPagination(next=page.cursor, sort_by=sort_by, sort_order=sort_order))


@router.get(_BASE + "/count", operation_id="countProjectBranches",
            response_model=wb.BranchesCountResponse, **_RESP)
async def count_project_branches(services: ServicesDep, project_id: ProjectId,
                                 search: str | None = None) -> wb.BranchesCountResponse:
    n = await run_in_threadpool(services.branches.count, project_id, search=search)
    return wb.BranchesCountResponse(count=n)


@router.post(_BASE, operation_id="createProjectBranch", status_code=201,
             response_model=wb.CreatedBranch, **_RESP)
async def create_project_branch(
    services: ServicesDep, project_id: ProjectId,
    body: Annotated[wb.BranchCreateRequest | None, Body()] = None,
) -> wb.CreatedBranch:
    created = await run_in_threadpool(services.branches.create, project_id,
                                      mp.branch_create(body))
    return wb.CreatedBranch(
        branch=mp.branch(created.branch), endpoints=mp.endpoints(created.endpoints),
        operations=mp.operations(created.operations),
        roles=[mp.role(x) for x in created.roles],
        databases=[mp.database(d) for d in created.databases],
        connection_uris=[mp.connection_details(c) for c in created.connection_uris] or None,
    )


@router.get(_BASE + "/{branch_id}", operation_id="getProjectBranch",
            response_model=wb.BranchResponse, **_RESP)
async def get_project_branch(services: ServicesDep, project_id: ProjectId,
                             branch_id: BranchId) -> wb.BranchResponse:
    b = await run_in_threadpool(services.branches.get, project_id, branch_id)
    return wb.BranchResponse(branch=mp.branch(b), annotation=mp.empty_annotation(b.id))


@router.patch(_BASE + "/{branch_id}", operation_id="updateProjectBranch",
              response_model=wb.BranchOperations, **_RESP)
async def update_project_branch(services: ServicesDep, project_id: ProjectId,
                                branch_id: BranchId,
                                body: wb.BranchUpdateRequest) -> wb.BranchOperations:
    res = await run_in_threadpool(services.branches.update, project_id, branch_id,
                                  mp.branch_update(body))
    return wb.BranchOperations(branch=mp.branch(res.value),
                               operations=mp.operations(res.operations))


@router.delete(_BASE + "/{branch_id}", operation_id="deleteProjectBranch",
               response_model=wb.BranchOperations, **_RESP)
async def delete_project_branch(services: ServicesDep, project_id: ProjectId,
                                branch_id: BranchId,
                                hard_delete: bool = False) -> wb.BranchOperations:
    res = await run_in_threadpool(services.branches.delete, project_id, branch_id)
    return wb.BranchOperations(branch=mp.branch(res.value),
                               operations=mp.operations(res.operations))


@router.post(_BASE + "/{branch_id}/set_as_default", operation_id="setDefaultProjectBranch",
             response_model=wb.BranchOperations, **_RESP)
# Neon's older name, still used by the neon-api SDK (branch_set_as_primary).
@router.post(_BASE + "/{branch_id}/set_as_primary", include_in_schema=False,
             response_model=wb.BranchOperations, **_RESP)
async def set_default_project_branch(services: ServicesDep, project_id: ProjectId,
                                     branch_id: BranchId) -> wb.BranchOperations:
    res = await run_in_threadpool(services.branches.set_default, project_id, branch_id)
    return wb.BranchOperations(branch=mp.branch(res.value),
                               operations=mp.operations(res.operations))


@router.get(_BASE + "/{branch_id}/schema", operation_id="getProjectBranchSchema",
            response_model=wb.BranchSchemaResponse, **_RESP)
async def get_project_branch_schema(
    services: ServicesDep, project_id: ProjectId, branch_id: BranchId, db_name: str,
    lsn: str | None = None, timestamp: datetime | None = None,
    format: Literal["sql"] | None = None,
) -> wb.BranchSchemaResponse:
    """The branch's schema as SQL (``pg_dump --schema-only``), at its head or at a past
    ``lsn`` / ``timestamp``."""
    sql = await run_in_threadpool(services.branches.schema, project_id, branch_id, db_name,
                                  lsn, timestamp)
    return wb.BranchSchemaResponse(sql=sql)


@router.get(_BASE + "/{branch_id}/compare_schema",
            operation_id="getProjectBranchSchemaComparison",
            response_model=wb.BranchSchemaCompareResponse, **_RESP)
async def get_project_branch_schema_comparison(
    services: ServicesDep, project_id: ProjectId, branch_id: BranchId, db_name: str,
    base_branch_id: str | None = None, lsn: str | None = None,
    timestamp: datetime | None = None, base_lsn: str | None = None,
    base_timestamp: datetime | None = None,
) -> wb.BranchSchemaCompareResponse:
    """Unified diff from the base branch's schema (default: the parent) to this one's."""
    res = await run_in_threadpool(services.branches.compare_schema, project_id, branch_id,
                                  db_name, base_branch_id, lsn, timestamp, base_lsn,
                                  base_timestamp)
    return wb.BranchSchemaCompareResponse(diff=res.diff)


@router.post(_BASE + "/{branch_id}/restore", operation_id="restoreProjectBranch",
             response_model=wb.BranchOperations, **_RESP)
async def restore_project_branch(services: ServicesDep, project_id: ProjectId,
                                 branch_id: BranchId,
                                 body: wb.BranchRestoreRequest) -> wb.BranchOperations:
    """Give the branch the state of ``source_branch_id`` (itself: a past point) at its
    head or at ``source_lsn`` / ``source_timestamp``; id, name and hosts are kept."""
    res = await run_in_threadpool(services.branches.restore, project_id, branch_id,
                                  mp.branch_restore(body))
    return wb.BranchOperations(branch=mp.branch(res.value),
                               operations=mp.operations(res.operations))


@router.get(_BASE + "/{branch_id}/endpoints", operation_id="listProjectBranchEndpoints",
            response_model=EndpointsResponse, **_RESP)
async def list_project_branch_endpoints(services: ServicesDep, project_id: ProjectId,
                                        branch_id: BranchId) -> EndpointsResponse:
    eps = await run_in_threadpool(services.endpoints.list_for_branch, project_id, branch_id)
    return EndpointsResponse(endpoints=mp.endpoints(eps))
