"""Neon features a self-hosted Argon does not have, answered as Neon answers when they
are not enabled: 404 with Neon's ``code`` and machine-readable ``reason``, so clients
that branch on them (and Neon's response schema) see what they expect."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from argon.api.deps import ServicesDep
from argon.api.errors import error_body, request_id_of
from argon.api.schemas.common import ID_PATTERN
from argon.errors import NotFound

router = APIRouter(tags=["Branch"])
ProjectId = Annotated[str, Path(pattern=ID_PATTERN)]
BranchId = Annotated[str, Path(pattern=ID_PATTERN)]
_BASE = "/projects/{project_id}/branches/{branch_id}"


async def _not_enabled(request: Request, services: ServicesDep, project_id: str,
                       branch_id: str, code: str, feature: str, reason: str) -> JSONResponse:
    try:
        await run_in_threadpool(services.branches.get, project_id, branch_id)
    except NotFound as exc:
        message, reason = exc.message, "branch_not_found"
    else:
        message = f"{feature} is not available in this Argon install"
    body = {**error_body(code, message, request_id_of(request)), "reason": reason}
    return JSONResponse(body, status_code=404)


@router.get(_BASE + "/storage", operation_id="getProjectBranchStorage",
            include_in_schema=False)
async def get_project_branch_storage(request: Request, services: ServicesDep,
                                     project_id: ProjectId,
                                     branch_id: BranchId) -> JSONResponse:
    return await _not_enabled(request, services, project_id, branch_id,
                              "STORAGE_NOT_ENABLED", "branch storage", "region_unavailable")


@router.get(_BASE + "/ai_gateway", operation_id="getProjectBranchAiGateway",
            include_in_schema=False)
async def get_project_branch_ai_gateway(request: Request, services: ServicesDep,
                                        project_id: ProjectId,
                                        branch_id: BranchId) -> JSONResponse:
    return await _not_enabled(request, services, project_id, branch_id,
                              "AI_GATEWAY_NOT_ENABLED", "the AI gateway",
                              "ai_gateway_unavailable")
