"""``GET /api/v2/console/projects/{id}/branch_sizes``: what the branch tree shows beside
Neon's branch objects (which carry no history size)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from argon.api.deps import ServicesDep
from argon.api.schemas.common import ID_PATTERN
from argon.control.branch_sizes import project_branch_sizes

router = APIRouter(tags=["Console"])


class BranchSizeOut(BaseModel):
    branch_id: str
    logical_size: int
    history_size: int


class BranchSizesResponse(BaseModel):
    branches: list[BranchSizeOut]


@router.get("/projects/{project_id}/branch_sizes", operation_id="consoleBranchSizes",
            response_model=BranchSizesResponse)
async def branch_sizes(services: ServicesDep,
                       project_id: Annotated[str, Path(pattern=ID_PATTERN)]
                       ) -> BranchSizesResponse:
    sizes = await run_in_threadpool(project_branch_sizes, services.ctx, project_id)
    return BranchSizesResponse(branches=[BranchSizeOut(**s.__dict__) for s in sizes])
