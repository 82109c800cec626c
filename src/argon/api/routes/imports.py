"""Argon's import (Neon has no import API): copy an existing Postgres into a new branch
of a project (``POST /projects/{project_id}/import``) or into a new project
(``POST /projects/import``). The answer is the import's report; with
``Accept: application/x-ndjson`` it is streamed as progress lines, the report last."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

from argon.api.deps import ServicesDep
from argon.api.schemas.common import ID_PATTERN
from argon.control.import_sync import ImportSyncService
from argon.control.imports import ImportRequest, ImportService, summary
from argon.errors import ArgonError

router = APIRouter(tags=["Argon"])
ProjectId = Annotated[str, Path(pattern=ID_PATTERN)]
BranchRef = Annotated[str, Path(min_length=1, max_length=256)]   # id or name
NDJSON = "application/x-ndjson"


class ImportSource(BaseModel):
    connection_uri: str = Field(description="The source database: postgresql://user:pw@host/db")


class ImportTarget(BaseModel):
    name: str | None = None
    parent_id: str | None = None


class ImportBody(BaseModel):
    source: ImportSource
    branch: ImportTarget | None = None      # into an existing project: the new branch
    project: ImportTarget | None = None     # a new project: its name
    database_name: str | None = None
    jobs: int = 2
    sync: bool = False                      # schema copy, then logical replication
    publication: str | None = None          # with sync: the source's publication to use


def _service(services: Any) -> ImportService:
    return ImportService(services.projects, services.branches, services.databases,
                         services.operations, services.runtime,
                         services.ctx.settings.home / "tmp")


def _request(body: ImportBody) -> ImportRequest:
    return ImportRequest(body.source.connection_uri,
                         project_name=body.project.name if body.project else None,
                         branch_name=body.branch.name if body.branch else None,
                         parent_id=body.branch.parent_id if body.branch else None,
                         database_name=body.database_name, jobs=body.jobs,
                         sync=body.sync, publication=body.publication)


async def _answer(request: Request, services: Any, project_id: str | None,
                  body: ImportBody) -> Response:
    svc, req = _service(services), _request(body)
    if NDJSON not in request.headers.get("accept", ""):
        result = await run_in_threadpool(svc.run, project_id, req)
        return JSONResponse(summary(result), status_code=201)
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def progress(phase: str, message: str) -> None:
        loop.call_soon_threadsafe(lines.put_nowait, {"phase": phase, "message": message})

    async def work() -> None:
        try:
            result = await run_in_threadpool(svc.run, project_id, req, progress)
            await lines.put({"result": summary(result)})
        except ArgonError as e:
            await lines.put({"error": {"code": e.code, "message": e.message}})
        finally:
            await lines.put(None)

    task = asyncio.create_task(work())

    async def stream() -> AsyncIterator[bytes]:
        while (item := await lines.get()) is not None:
            yield (json.dumps(item) + "\n").encode()
        await task

    return StreamingResponse(stream(), media_type=NDJSON)


# Not in the OpenAPI document: it is Neon's, diffed against Neon's spec in the tests.
@router.post("/projects/import", operation_id="importIntoNewProject", status_code=201,
             include_in_schema=False)
async def import_into_new_project(request: Request, services: ServicesDep,
                                  body: Annotated[ImportBody, Body()]) -> Response:
    """Copy a database (pg_dump | pg_restore) into a new project; nothing stays if it fails."""
    return await _answer(request, services, None, body)


@router.post("/projects/{project_id}/import", operation_id="importIntoNewBranch",
             status_code=201, include_in_schema=False)
async def import_into_new_branch(request: Request, services: ServicesDep,
                                 project_id: ProjectId,
                                 body: Annotated[ImportBody, Body()]) -> Response:
    """Copy a database into a new branch of the project; nothing stays if it fails."""
    return await _answer(request, services, project_id, body)


def _sync(services: Any) -> ImportSyncService:
    return ImportSyncService(services.ctx, services.runtime)


@router.get("/projects/{project_id}/branches/{branch_id}/import", operation_id="getImportSync",
            include_in_schema=False)
async def get_import_sync(services: ServicesDep, project_id: ProjectId,
                          branch_id: BranchRef) -> dict[str, Any]:
    """Progress and lag of an import's sync (``argon import --sync``) into the branch."""
    return await run_in_threadpool(_sync(services).status, project_id, branch_id)


class CutoverBody(BaseModel):
    timeout_seconds: float = Field(default=300, gt=0, le=3600)


@router.post("/projects/{project_id}/branches/{branch_id}/import/cutover",
             operation_id="cutoverImportSync", include_in_schema=False)
async def cutover_import_sync(services: ServicesDep, project_id: ProjectId,
                              branch_id: BranchRef,
                              body: Annotated[CutoverBody | None, Body()] = None) -> dict[str, Any]:
    """Wait for the branch to catch up with the source, advance its sequences, end the
    sync (subscription, slot, Argon's publication); rows counted on both sides."""
    timeout = body.timeout_seconds if body else 300
    return await run_in_threadpool(_sync(services).cutover, project_id, branch_id, timeout)
