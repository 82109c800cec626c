"""The Monitoring page's routes: the figures Argon recorded for one endpoint in a range, and
the project's OTLP export settings (``control/otel_export.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from argon.api.deps import ServicesDep
from argon.api.schemas.common import ID_PATTERN, RequestModel

router = APIRouter(tags=["Console"])
ProjectId = Annotated[str, Path(pattern=ID_PATTERN)]
EndpointId = Annotated[str, Path(pattern=ID_PATTERN)]


@router.get("/projects/{project_id}/endpoints/{endpoint_id}/metrics",
            operation_id="consoleEndpointMetrics")
async def endpoint_metrics(services: ServicesDep, project_id: ProjectId,
                           endpoint_id: EndpointId,
                           since: Annotated[datetime | None, Query(alias="from")] = None,
                           until: Annotated[datetime | None, Query(alias="to")] = None,
                           max_points: int = 1000) -> dict[str, Any]:
    samples = await run_in_threadpool(services.monitoring.samples, project_id, endpoint_id,
                                      since, until, max_points)
    return {"endpoint_id": endpoint_id,
            "interval_seconds": services.monitoring.interval, "samples": samples}


class OtelSettings(RequestModel):
    endpoint: str = Field(min_length=1, max_length=2048)
    bearer_token: str | None = Field(default=None, max_length=4096)
    resource_attributes: dict[str, str] = Field(default_factory=dict)


def _otel_out(got: dict[str, Any] | None) -> dict[str, Any]:
    if got is None:
        return {"otel": None}
    at = got["last_push_at"]
    return {"otel": {**got, "last_push_at": at.isoformat().replace("+00:00", "Z") if at else None}}


@router.get("/projects/{project_id}/otel", operation_id="consoleGetOtelExport")
async def get_otel(services: ServicesDep, project_id: ProjectId) -> dict[str, Any]:
    return _otel_out(await run_in_threadpool(services.otel.get, project_id))


@router.put("/projects/{project_id}/otel", operation_id="consoleSetOtelExport")
async def set_otel(services: ServicesDep, project_id: ProjectId,
                   body: OtelSettings) -> dict[str, Any]:
    return _otel_out(await run_in_threadpool(services.otel.configure, project_id, body.endpoint,
                                             body.bearer_token, body.resource_attributes))


@router.delete("/projects/{project_id}/otel", operation_id="consoleDeleteOtelExport")
async def delete_otel(services: ServicesDep, project_id: ProjectId) -> dict[str, Any]:
    await run_in_threadpool(services.otel.remove, project_id)
    return {"otel": None}
