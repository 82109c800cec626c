"""Consumption history (tag ``Consumption``): what Argon measures, in Neon's frames.

The figures and how each is measured are stated in ``argon.control.consumption`` and in
each route's description.  These calls never wake a compute.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from argon.api.deps import ServicesDep
from argon.api.schemas import consumption as wc
from argon.api.schemas.common import ID_PATTERN, Pagination
from argon.control.consumption import Granularity

router = APIRouter(tags=["Consumption"])
_RESP = {"response_model_exclude_none": True}

From = Annotated[datetime, Query(alias="from", description="Start; rounded down to the "
                                 "granularity.")]
To = Annotated[datetime, Query(description="End (exclusive).")]
Ids = Annotated[list[str] | None, Query(max_length=100, description="Repeated or "
                                        "comma-separated project ids.")]
Metrics = Annotated[list[str] | None, Query(description="Repeated or comma-separated "
                                            "metric names.")]
Limit = Annotated[int, Query(ge=1, le=100)]
OrgId = Annotated[str | None, Query(pattern=ID_PATTERN, description="The local "
                                    "organization, if given.")]

_V1 = """Per project and time frame, as Argon measures them on this machine:
`active_time_seconds` is how long the project's computes ran (summed over endpoints,
deleted ones included); `compute_time_seconds` is those seconds times each compute's size
in CU (its autoscaling maximum; Argon does not autoscale); `written_data_bytes` is WAL
written (each branch's LSN advance, sampled every ~10 s while a compute runs);
`synthetic_storage_size_bytes` (and `logical_size_bytes`) is the bytes the branches
occupy on disk, measured every minute, reported in the frame holding now only (Argon keeps
no history of sizes; earlier frames say 0).  `from` is rounded down to the granularity;
hourly frames reach back 168 hours, daily 60 days, monthly one year (406 beyond); frames
cover `[from, to)`.  `include_v1_metrics` adds `data_storage_bytes_hour` (bytes on
disk times the hours of the current frame that have passed)."""

_V2 = """Per project and time frame: `compute_unit_seconds` is measured (run time times
CU); `root_branch_bytes_month` / `child_branch_bytes_month` are the branches' current
bytes over the part of the current frame that has passed, as a fraction of a 30-day
month (earlier frames 0: no size history is kept); the other metrics (network transfer,
instant restore, extra branches, snapshot storage) have no measure on one machine and are
0.  Frames as for the legacy call."""


def _page(cursor: str | None) -> Pagination | None:
    return Pagination(cursor=cursor) if cursor else None


@router.get("/consumption_history/projects", operation_id="getConsumptionHistoryPerProject",
            response_model=wc.ConsumptionHistoryPerProjectResponse, description=_V1,
            **_RESP)
async def get_consumption_history_per_project(
    services: ServicesDep, from_: From, to: To, granularity: Granularity,
    cursor: str | None = None, limit: Limit = 10, project_ids: Ids = None,
    org_id: OrgId = None, include_v1_metrics: bool | None = None, metrics: Metrics = None,
) -> wc.ConsumptionHistoryPerProjectResponse:
    items, nxt = await run_in_threadpool(
        lambda: services.consumption.per_project(
            start=from_, end=to, granularity=granularity, project_ids=project_ids,
            cursor=cursor, limit=limit, metrics=metrics,
            include_v1_metrics=bool(include_v1_metrics), org_id=org_id))
    return wc.ConsumptionHistoryPerProjectResponse(
        projects=[wc.ConsumptionHistoryPerProject(**i) for i in items], pagination=_page(nxt))


@router.get("/consumption_history/v2/projects",
            operation_id="getConsumptionHistoryPerProjectV2",
            response_model=wc.ConsumptionHistoryPerProjectV2Response, description=_V2,
            **_RESP)
async def get_consumption_history_per_project_v2(
    services: ServicesDep, from_: From, to: To, granularity: Granularity, metrics: Metrics,
    cursor: str | None = None, limit: Limit = 10, project_ids: Ids = None,
    org_id: OrgId = None,
) -> wc.ConsumptionHistoryPerProjectV2Response:
    items, nxt = await run_in_threadpool(
        lambda: services.consumption.per_project_v2(
            start=from_, end=to, granularity=granularity, metrics=metrics,
            project_ids=project_ids, cursor=cursor, limit=limit, org_id=org_id))
    return wc.ConsumptionHistoryPerProjectV2Response(
        projects=[wc.ConsumptionHistoryPerProjectV2(**i) for i in items],
        pagination=_page(nxt))


@router.get("/consumption_history/v2/branches",
            operation_id="getConsumptionHistoryPerBranchV2",
            response_model=wc.ConsumptionHistoryPerBranchV2Response,
            description=_V2.replace("Per project", "Per branch"), **_RESP)
async def get_consumption_history_per_branch_v2(
    services: ServicesDep, from_: From, to: To, granularity: Granularity, metrics: Metrics,
    project_ids: Ids = None, branch_ids: Ids = None, cursor: str | None = None,
    limit: Limit = 10, org_id: OrgId = None,
) -> wc.ConsumptionHistoryPerBranchV2Response:
    items, nxt = await run_in_threadpool(
        lambda: services.consumption.per_branch_v2(
            start=from_, end=to, granularity=granularity, metrics=metrics,
            project_ids=project_ids or [], branch_ids=branch_ids, cursor=cursor,
            limit=limit, org_id=org_id))
    return wc.ConsumptionHistoryPerBranchV2Response(
        branches=[wc.ConsumptionHistoryPerBranchV2(**i) for i in items],
        pagination=_page(nxt))
