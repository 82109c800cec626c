"""Tag ``Operation``: list and get, so clients can poll long work."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from argon.api import mapping as mp
from argon.api.deps import ServicesDep
from argon.api.schemas.common import (
    ID_PATTERN,
    OperationResponse,
    OperationsListResponse,
    Pagination,
)

router = APIRouter(tags=["Operation"])
ProjectId = Annotated[str, Path(pattern=ID_PATTERN)]
_RESP = {"response_model_exclude_none": True}


@router.get("/projects/{project_id}/operations", operation_id="listProjectOperations",
            response_model=OperationsListResponse, **_RESP)
async def list_operations(services: ServicesDep, project_id: ProjectId,
                          cursor: str | None = None,
                          limit: Annotated[int | None, Query(ge=1)] = None,
                          ) -> OperationsListResponse:
    page = await run_in_threadpool(services.operations.list, project_id, cursor=cursor,
                                   limit=limit)
    return OperationsListResponse(
        operations=mp.operations(page.items),
        pagination=Pagination(cursor=page.cursor) if page.cursor else None)


@router.get("/projects/{project_id}/operations/{operation_id}",
            operation_id="getProjectOperation", response_model=OperationResponse, **_RESP)
async def get_operation(services: ServicesDep, project_id: ProjectId,
                        operation_id: Annotated[str, Path(max_length=64)]) -> OperationResponse:
    op = await run_in_threadpool(services.operations.get, project_id, operation_id)
    return OperationResponse(operation=mp.operation(op))
