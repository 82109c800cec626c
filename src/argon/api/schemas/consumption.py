"""Consumption history (tag ``Consumption``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from argon.api.schemas.common import Pagination


class ConsumptionHistoryPerTimeframe(BaseModel):
    timeframe_start: datetime
    timeframe_end: datetime
    active_time_seconds: int
    compute_time_seconds: int
    written_data_bytes: int
    synthetic_storage_size_bytes: int
    data_storage_bytes_hour: int | None = None
    logical_size_bytes: int | None = None
    logical_size_bytes_hour: int | None = None


class ConsumptionHistoryPerPeriod(BaseModel):
    period_id: str
    period_plan: str
    period_start: datetime
    period_end: datetime | None = None
    consumption: list[ConsumptionHistoryPerTimeframe]


class ConsumptionHistoryPerProject(BaseModel):
    project_id: str
    periods: list[ConsumptionHistoryPerPeriod]


class ConsumptionHistoryPerProjectResponse(BaseModel):
    projects: list[ConsumptionHistoryPerProject]
    pagination: Pagination | None = None


class ConsumptionMetricValue(BaseModel):
    metric_name: str
    value: int


class ConsumptionHistoryPerTimeframeV2(BaseModel):
    timeframe_start: datetime
    timeframe_end: datetime
    metrics: list[ConsumptionMetricValue]


class ConsumptionHistoryPerPeriodV2(BaseModel):
    period_id: str
    period_plan: str
    period_start: datetime
    period_end: datetime | None = None
    consumption: list[ConsumptionHistoryPerTimeframeV2]


class ConsumptionHistoryPerProjectV2(BaseModel):
    project_id: str
    periods: list[ConsumptionHistoryPerPeriodV2]


class ConsumptionHistoryPerProjectV2Response(BaseModel):
    projects: list[ConsumptionHistoryPerProjectV2]
    pagination: Pagination | None = None


class ConsumptionHistoryPerBranchV2(BaseModel):
    project_id: str
    branch_id: str
    periods: list[ConsumptionHistoryPerPeriodV2]


class ConsumptionHistoryPerBranchV2Response(BaseModel):
    branches: list[ConsumptionHistoryPerBranchV2]
    pagination: Pagination | None = None
