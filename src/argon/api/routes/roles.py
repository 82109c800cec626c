"""Tag ``Branch`` (roles): list, create, get, delete, reveal and reset the password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from argon.api import mapping as mp
from argon.api.deps import ServicesDep
from argon.api.schemas import branches as wb
from argon.api.schemas.common import ID_PATTERN

router = APIRouter(tags=["Branch"])
ProjectId = Annotated[str, Path(pattern=ID_PATTERN)]
BranchId = Annotated[str, Path(pattern=ID_PATTERN)]
_RESP = {"response_model_exclude_none": True}
_BASE = "/projects/{project_id}/branches/{branch_id}/roles"


@router.get(_BASE, operation_id="listProjectBranchRoles", response_model=wb.RolesResponse,
            **_RESP)
async def list_roles(services: ServicesDep, project_id: ProjectId,
                     branch_id: BranchId) -> wb.RolesResponse:
    roles = await run_in_threadpool(services.roles.list, project_id, branch_id)
    return wb.RolesResponse(roles=[mp.role(x) for x in roles])


@router.post(_BASE, operation_id="createProjectBranchRole", status_code=201,
             response_model=wb.RoleOperations, **_RESP)
async def create_role(services: ServicesDep, project_id: ProjectId, branch_id: BranchId,
                      body: wb.RoleCreateRequest) -> wb.RoleOperations:
    res = await run_in_threadpool(services.roles.create, project_id, branch_id,
                                  body.role.name, bool(body.role.no_login))
    return wb.RoleOperations(role=mp.role(res.value), operations=mp.operations(res.operations))


@router.get(_BASE + "/{role_name:path}/reveal_password",
            operation_id="getProjectBranchRolePassword",
            response_model=wb.RolePasswordResponse, **_RESP)
# The neon-api SDK (PyPI) sends POST here; accept it without advertising it.
@router.post(_BASE + "/{role_name:path}/reveal_password", include_in_schema=False,
             response_model=wb.RolePasswordResponse, **_RESP)
async def reveal_role_password(services: ServicesDep, project_id: ProjectId,
                               branch_id: BranchId, role_name: str) -> wb.RolePasswordResponse:
    pw = await run_in_threadpool(services.roles.reveal_password, project_id, branch_id,
                                 role_name)
    return wb.RolePasswordResponse(password=pw)


@router.post(_BASE + "/{role_name:path}/reset_password",
             operation_id="resetProjectBranchRolePassword",
             response_model=wb.RoleOperations, **_RESP)
async def reset_role_password(services: ServicesDep, project_id: ProjectId,
                              branch_id: BranchId, role_name: str) -> wb.RoleOperations:
    res = await run_in_threadpool(services.roles.reset_password, project_id, branch_id,
                                  role_name)
    return wb.RoleOperations(role=mp.role(res.value), operations=mp.operations(res.operations))


# After the /reveal_password and /reset_password routes: a name may hold '/' (sent as
# %2F), and the first route that matches wins.
@router.get(_BASE + "/{role_name:path}", operation_id="getProjectBranchRole",
            response_model=wb.RoleResponse, **_RESP)
async def get_role(services: ServicesDep, project_id: ProjectId, branch_id: BranchId,
                   role_name: str) -> wb.RoleResponse:
    x = await run_in_threadpool(services.roles.get, project_id, branch_id, role_name)
    return wb.RoleResponse(role=mp.role(x))


@router.delete(_BASE + "/{role_name:path}", operation_id="deleteProjectBranchRole",
               response_model=wb.RoleOperations, **_RESP)
async def delete_role(services: ServicesDep, project_id: ProjectId, branch_id: BranchId,
                      role_name: str) -> wb.RoleOperations:
    res = await run_in_threadpool(services.roles.delete, project_id, branch_id, role_name)
    return wb.RoleOperations(role=mp.role(res.value), operations=mp.operations(res.operations))
