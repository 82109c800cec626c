"""Endpoint shapes (tag ``Endpoint``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from argon.api.schemas.common import ID_PATTERN, Operation, RequestModel

EndpointType = Literal["read_only", "read_write"]


class EndpointSettingsData(RequestModel):
    pg_settings: dict[str, str] | None = None
    pgbouncer_settings: dict[str, str] | None = None
    preload_libraries: dict[str, object] | None = None


class _EndpointFields(RequestModel):
    autoscaling_limit_min_cu: float | None = Field(None, ge=0.25)
    autoscaling_limit_max_cu: float | None = Field(None, ge=0.25)
    provisioner: str | None = None
    settings: EndpointSettingsData | None = None
    suspend_timeout_seconds: int | None = Field(None, ge=-1, le=604800)


class BranchCreateRequestEndpointOptions(_EndpointFields):
    type: EndpointType


class EndpointCreateFields(_EndpointFields):
    branch_id: str = Field(pattern=ID_PATTERN)
    region_id: str | None = None
    type: EndpointType
    pooler_enabled: bool | None = None
    pooler_mode: Literal["transaction"] | None = None
    disabled: bool | None = None
    passwordless_access: bool | None = None
    name: str | None = Field(None, max_length=256)


class EndpointCreateRequest(RequestModel):
    endpoint: EndpointCreateFields


class EndpointUpdateFields(_EndpointFields):
    branch_id: str | None = Field(None, pattern=ID_PATTERN)
    pooler_enabled: bool | None = None
    pooler_mode: Literal["transaction"] | None = None
    disabled: bool | None = None
    passwordless_access: bool | None = None
    name: str | None = Field(None, max_length=256)


class EndpointUpdateRequest(RequestModel):
    endpoint: EndpointUpdateFields


class EndpointSettingsOut(BaseModel):
    pg_settings: dict[str, str]


class Endpoint(BaseModel):
    host: str
    id: str
    project_id: str
    branch_id: str
    autoscaling_limit_min_cu: float
    autoscaling_limit_max_cu: float
    region_id: str
    type: str
    current_state: str
    pending_state: str | None = None
    settings: EndpointSettingsOut
    pooler_enabled: bool
    pooler_mode: str
    disabled: bool
    passwordless_access: bool
    last_active: datetime | None = None
    creation_source: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    suspended_at: datetime | None = None
    proxy_host: str
    suspend_timeout_seconds: int
    provisioner: str
    # Argon's: a running read replica's lag (WAL bytes not replayed, Postgres' replay_lag)
    replication_lag_bytes: int | None = None
    replication_lag_seconds: float | None = None


class EndpointsResponse(BaseModel):
    endpoints: list[Endpoint]


class EndpointResponse(BaseModel):
    endpoint: Endpoint


class EndpointOperations(BaseModel):
    endpoint: Endpoint
    operations: list[Operation]
