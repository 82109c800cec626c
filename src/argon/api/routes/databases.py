"""Tag ``Branch`` (databases): list, create, get, update, delete."""

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
_BASE = "/projects/{project_id}/branches/{branch_id}/databases"


@router.get(_BASE, operation_id="listProjectBranchDatabases",
            response_model=wb.DatabasesResponse, **_RESP)
async def list_databases(services: ServicesDep, project_id: ProjectId,
                         branch_id: BranchId) -> wb.DatabasesResponse:
    dbs = await run_in_threadpool(services.databases.list, project_id, branch_id)
    return wb.DatabasesResponse(databases=[mp.database(d) for d in dbs])


@router.post(_BASE, operation_id="createProjectBranchDatabase", status_code=201,
             response_model=wb.DatabaseOperations, **_RESP)
async def create_database(services: ServicesDep, project_id: ProjectId, branch_id: BranchId,
                          body: wb.DatabaseCreateRequest) -> wb.DatabaseOperations:
    res = await run_in_threadpool(services.databases.create, project_id, branch_id,
                                  mp.database_create(body))
    return wb.DatabaseOperations(database=mp.database(res.value),
                                 operations=mp.operations(res.operations))


@router.get(_BASE + "/{database_name:path}", operation_id="getProjectBranchDatabase",
            response_model=wb.DatabaseResponse, **_RESP)
async def get_database(services: ServicesDep, project_id: ProjectId, branch_id: BranchId,
                       database_name: str) -> wb.DatabaseResponse:
    d = await run_in_threadpool(services.databases.get, project_id, branch_id, database_name)
    return wb.DatabaseResponse(database=mp.database(d))


@router.patch(_BASE + "/{database_name:path}", operation_id="updateProjectBranchDatabase",
              response_model=wb.DatabaseOperations, **_RESP)
async def update_database(services: ServicesDep, project_id: ProjectId, branch_id: BranchId,
                          database_name: str,
                          body: wb.DatabaseUpdateRequest) -> wb.DatabaseOperations:
    res = await run_in_threadpool(services.databases.update, project_id, branch_id,
                                  database_name, mp.database_update(body))
    return wb.DatabaseOperations(database=mp.database(res.value),
                                 operations=mp.operations(res.operations))


@router.delete(_BASE + "/{database_name:path}", operation_id="deleteProjectBranchDatabase",
               response_model=wb.DatabaseOperations, **_RESP)
async def delete_database(services: ServicesDep, project_id: ProjectId, branch_id: BranchId,
                          database_name: str) -> wb.DatabaseOperations:
    res = await run_in_threadpool(services.databases.delete, project_id, branch_id,
                                  database_name)
    return wb.DatabaseOperations(database=mp.database(res.value),
                                 operations=mp.operations(res.operations))
