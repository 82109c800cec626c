"""Tag ``Project``: list, create, get, update, delete, connection URI."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from argon.api import mapping as mp
from argon.api.deps import ServicesDep
from argon.api.schemas import projects as wp
from argon.api.schemas.common import ID_PATTERN, Pagination

router = APIRouter(tags=["Project"])
ProjectId = Annotated[str, Path(pattern=ID_PATTERN)]
_RESP = {"response_model_exclude_none": True}


def _proxy_host(request: Request) -> str:
    return str(request.app.state.proxy_host)


@router.get("/projects", operation_id="listProjects", response_model=wp.ProjectsResponse,
            **_RESP)
async def list_projects(
    request: Request, services: ServicesDep,
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    search: str | None = None,
    org_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    timeout: Annotated[int | None, Query(ge=100, le=30000)] = None,
    recoverable: bool = False,
) -> wp.ProjectsResponse:
    """Projects of this install. ``org_id``, ``timeout`` and ``recoverable`` are accepted
    for compatibility; a single-tenant install has no organisations or deleted projects."""
    if recoverable:
        return wp.ProjectsResponse(projects=[])
    page = await run_in_threadpool(services.projects.list, search=search, cursor=cursor,
                                   limit=limit)
    host = _proxy_host(request)
    return wp.ProjectsResponse(
        projects=[mp.project_list_item(p, host) for p in page.items],
        pagination=Pagination(cursor=page.cursor) if page.cursor else None)


@router.get("/projects/shared", operation_id="listSharedProjects",
            response_model=wp.ProjectsResponse, **_RESP)
async def list_shared_projects(
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    search: str | None = None,
) -> wp.ProjectsResponse:
    """Projects shared with this user by others: always none on a single-tenant install."""
    return wp.ProjectsResponse(projects=[])


@router.post("/projects", operation_id="createProject", status_code=201,
             response_model=wp.CreatedProject, **_RESP)
async def create_project(request: Request, services: ServicesDep,
                         body: wp.ProjectCreateRequest) -> wp.CreatedProject:
    created = await run_in_threadpool(services.projects.create, mp.project_create(body))
    return wp.CreatedProject(
        project=mp.project(created.project, _proxy_host(request)),
        connection_uris=[mp.connection_details(c) for c in created.connection_uris],
        roles=[mp.role(x) for x in created.roles],
        databases=[mp.database(d) for d in created.databases],
        operations=mp.operations(created.operations),
        branch=mp.branch(created.branch),
        endpoints=mp.endpoints(created.endpoints),
    )


@router.get("/projects/{project_id}", operation_id="getProject",
            response_model=wp.ProjectResponse, **_RESP)
async def get_project(request: Request, services: ServicesDep,
                      project_id: ProjectId) -> wp.ProjectResponse:
    p = await run_in_threadpool(services.projects.get, project_id)
    return wp.ProjectResponse(project=mp.project(p, _proxy_host(request)))


@router.patch("/projects/{project_id}", operation_id="updateProject",
              response_model=wp.ProjectOperations, **_RESP)
async def update_project(request: Request, services: ServicesDep, project_id: ProjectId,
                         body: wp.ProjectUpdateRequest) -> wp.ProjectOperations:
    res = await run_in_threadpool(services.projects.update, project_id,
                                  mp.project_update(body))
    return wp.ProjectOperations(project=mp.project(res.value, _proxy_host(request)),
                                operations=mp.operations(res.operations))


@router.delete("/projects/{project_id}", operation_id="deleteProject",
               response_model=wp.ProjectResponse, **_RESP)
async def delete_project(request: Request, services: ServicesDep,
                         project_id: ProjectId) -> wp.ProjectResponse:
    res = await run_in_threadpool(services.projects.delete, project_id)
    return wp.ProjectResponse(project=mp.project(res.value, _proxy_host(request)))


@router.get("/projects/{project_id}/connection_uri", operation_id="getConnectionURI",
            response_model=wp.ConnectionURIResponse, **_RESP)
async def get_connection_uri(
    services: ServicesDep, project_id: ProjectId,
    database_name: str, role_name: str,
    branch_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    endpoint_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    pooled: bool = False,
) -> wp.ConnectionURIResponse:
    uri = await run_in_threadpool(
        lambda: services.projects.connection_uri(
            project_id, branch_id=branch_id, endpoint_id=endpoint_id,
            database_name=database_name, role_name=role_name, pooled=pooled))
    return wp.ConnectionURIResponse(uri=uri.connection_uri)
