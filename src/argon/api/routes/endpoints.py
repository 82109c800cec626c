"""Tag ``Endpoint``: list, create, get, update, delete, start, suspend, restart."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from argon.api import mapping as mp
from argon.api.deps import ServicesDep
from argon.api.schemas import endpoints as we
from argon.api.schemas.common import ID_PATTERN
from argon.control.models import Endpoint, Mutation

router = APIRouter(tags=["Endpoint"])
ProjectId = Annotated[str, Path(pattern=ID_PATTERN)]
EndpointId = Annotated[str, Path(pattern=ID_PATTERN)]
_RESP = {"response_model_exclude_none": True}
_BASE = "/projects/{project_id}/endpoints"


def _ops(res: Mutation[Endpoint]) -> we.EndpointOperations:
    return we.EndpointOperations(endpoint=mp.endpoint(res.value),
                                 operations=mp.operations(res.operations))


@router.get(_BASE, operation_id="listProjectEndpoints", response_model=we.EndpointsResponse,
            **_RESP)
async def list_endpoints(services: ServicesDep, project_id: ProjectId) -> we.EndpointsResponse:
    eps = await run_in_threadpool(services.endpoints.list, project_id)
    return we.EndpointsResponse(endpoints=mp.endpoints(eps))


@router.post(_BASE, operation_id="createProjectEndpoint", status_code=201,
             response_model=we.EndpointOperations, **_RESP)
async def create_endpoint(services: ServicesDep, project_id: ProjectId,
                          body: we.EndpointCreateRequest) -> we.EndpointOperations:
    return _ops(await run_in_threadpool(services.endpoints.create, project_id,
                                        mp.endpoint_create(body)))


@router.get(_BASE + "/{endpoint_id}", operation_id="getProjectEndpoint",
            response_model=we.EndpointResponse, **_RESP)
async def get_endpoint(services: ServicesDep, project_id: ProjectId,
                       endpoint_id: EndpointId) -> we.EndpointResponse:
    e = await run_in_threadpool(services.endpoints.get, project_id, endpoint_id)
    return we.EndpointResponse(endpoint=mp.endpoint(e))


@router.patch(_BASE + "/{endpoint_id}", operation_id="updateProjectEndpoint",
              response_model=we.EndpointOperations, **_RESP)
async def update_endpoint(services: ServicesDep, project_id: ProjectId,
                          endpoint_id: EndpointId,
                          body: we.EndpointUpdateRequest) -> we.EndpointOperations:
    return _ops(await run_in_threadpool(services.endpoints.update, project_id, endpoint_id,
                                        mp.endpoint_update(body)))


@router.delete(_BASE + "/{endpoint_id}", operation_id="deleteProjectEndpoint",
               response_model=we.EndpointOperations, **_RESP)
async def delete_endpoint(services: ServicesDep, project_id: ProjectId,
                          endpoint_id: EndpointId) -> we.EndpointOperations:
    return _ops(await run_in_threadpool(services.endpoints.delete, project_id, endpoint_id))


@router.post(_BASE + "/{endpoint_id}/start", operation_id="startProjectEndpoint",
             response_model=we.EndpointOperations, **_RESP)
async def start_endpoint(services: ServicesDep, project_id: ProjectId,
                         endpoint_id: EndpointId) -> we.EndpointOperations:
    return _ops(await run_in_threadpool(services.endpoints.start, project_id, endpoint_id))


@router.post(_BASE + "/{endpoint_id}/suspend", operation_id="suspendProjectEndpoint",
             response_model=we.EndpointOperations, **_RESP)
async def suspend_endpoint(services: ServicesDep, project_id: ProjectId,
                           endpoint_id: EndpointId) -> we.EndpointOperations:
    return _ops(await run_in_threadpool(services.endpoints.suspend, project_id, endpoint_id))


@router.post(_BASE + "/{endpoint_id}/restart", operation_id="restartProjectEndpoint",
             response_model=we.EndpointOperations, **_RESP)
async def restart_endpoint(services: ServicesDep, project_id: ProjectId,
                           endpoint_id: EndpointId) -> we.EndpointOperations:
    return _ops(await run_in_threadpool(services.endpoints.restart, project_id, endpoint_id))
