"""Project permissions: ``GET/POST /projects/{id}/permissions``, ``DELETE .../{id}``.

What granting means here: Argon has one account, and every API key of the install
already reaches every project.  A grant is recorded and listed with Neon's shape, so
scripts and Terraform that manage project sharing keep working, but it gives no one
access they did not have (there are no other users to share with).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from argon.api.deps import ServicesDep
from argon.api.schemas import permissions as wperm
from argon.api.schemas.common import ID_PATTERN

router = APIRouter(tags=["Project"])
ProjectId = Annotated[str, Path(pattern=ID_PATTERN)]
_RESP = {"response_model_exclude_none": True}
_MEANING = ("On Argon a grant is recorded and listed but changes no access: the install "
            "has one account, and every API key already reaches every project.")


@router.get("/projects/{project_id}/permissions", operation_id="listProjectPermissions",
            response_model=wperm.ProjectPermissions, description=_MEANING, **_RESP)
async def list_project_permissions(services: ServicesDep,
                                   project_id: ProjectId) -> wperm.ProjectPermissions:
    items = await run_in_threadpool(services.permissions.list, project_id)
    return wperm.ProjectPermissions(
        project_permissions=[wperm.ProjectPermission(**i) for i in items])


@router.post("/projects/{project_id}/permissions", operation_id="grantPermissionToProject",
             response_model=wperm.ProjectPermission, description=_MEANING, **_RESP)
async def grant_permission_to_project(
    services: ServicesDep, project_id: ProjectId,
    body: wperm.GrantPermissionToProjectRequest,
) -> wperm.ProjectPermission:
    item = await run_in_threadpool(services.permissions.grant, project_id, body.email)
    return wperm.ProjectPermission(**item)


@router.delete("/projects/{project_id}/permissions/{permission_id}",
               operation_id="revokePermissionFromProject",
               response_model=wperm.ProjectPermission, description=_MEANING, **_RESP)
async def revoke_permission_from_project(
    services: ServicesDep, project_id: ProjectId,
    permission_id: Annotated[str, Path(min_length=1, max_length=64)],
) -> wperm.ProjectPermission:
    item = await run_in_threadpool(services.permissions.revoke, project_id, permission_id)
    return wperm.ProjectPermission(**item)
