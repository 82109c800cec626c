"""Project shapes (tag ``Project``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from argon.api.schemas.branches import Branch, ConnectionDetails, Database, Role
from argon.api.schemas.common import ID_PATTERN, Operation, Pagination, RequestModel
from argon.api.schemas.endpoints import Endpoint

ComputeUnit = float


class DefaultEndpointSettings(RequestModel):
    pg_settings: dict[str, str] | None = None
    pgbouncer_settings: dict[str, str] | None = None
    autoscaling_limit_min_cu: float | None = Field(None, ge=0.25)
    autoscaling_limit_max_cu: float | None = Field(None, ge=0.25)
    suspend_timeout_seconds: int | None = Field(None, ge=-1, le=604800)


class ProjectQuota(RequestModel):
    active_time_seconds: int | None = Field(None, ge=0)
    compute_time_seconds: int | None = Field(None, ge=0)
    written_data_bytes: int | None = Field(None, ge=0)
    data_transfer_bytes: int | None = Field(None, ge=0)
    logical_size_bytes: int | None = Field(None, ge=0)


class MaintenanceWindow(RequestModel):
    weekdays: list[int]
    start_time: str
    end_time: str


class PreloadLibraries(RequestModel):
    use_defaults: bool | None = None
    enabled_libraries: list[str] | None = None


class ProjectSettingsData(BaseModel):
    """Project settings; Argon acts on ``enable_logical_replication`` and ``allowed_ips``
    and keeps the rest.  Stored fields are echoed in every project answer, so each is
    typed as Neon's schema types it: a shape accepted here is a shape Neon's clients read."""

    model_config = ConfigDict(extra="forbid")

    quota: ProjectQuota | None = None
    allowed_ips: dict[str, Any] | None = None   # shape and entries: control.ip_allow
    enable_logical_replication: bool | None = None
    maintenance_window: MaintenanceWindow | None = None
    block_public_connections: bool | None = None
    block_vpc_connections: bool | None = None
    audit_log_level: str | None = None   # Neon's enum, checked in control.validation
    hipaa: bool | None = None
    preload_libraries: PreloadLibraries | None = None


class ProjectCreateBranch(RequestModel):
    name: str | None = Field(None, min_length=1, max_length=256)
    role_name: str | None = None
    database_name: str | None = None
    annotations: dict[str, str] | None = None


class ProjectCreateFields(RequestModel):
    settings: ProjectSettingsData | None = None
    name: str | None = Field(None, min_length=1, max_length=256)
    branch: ProjectCreateBranch | None = None
    autoscaling_limit_min_cu: float | None = Field(None, ge=0.25, deprecated=True)
    autoscaling_limit_max_cu: float | None = Field(None, ge=0.25, deprecated=True)
    provisioner: str | None = None
    region_id: str | None = None
    default_endpoint_settings: DefaultEndpointSettings | None = None
    pg_version: int | None = Field(None, ge=14, le=18)
    store_passwords: bool | None = None
    history_retention_seconds: int | None = Field(None, ge=0, le=2592000)
    org_id: str | None = Field(None, pattern=ID_PATTERN)


class ProjectCreateRequest(RequestModel):
    project: ProjectCreateFields


class ProjectUpdateFields(RequestModel):
    settings: ProjectSettingsData | None = None
    name: str | None = Field(None, min_length=1, max_length=256)
    default_endpoint_settings: DefaultEndpointSettings | None = None
    history_retention_seconds: int | None = Field(None, ge=0, le=2592000)


class ProjectUpdateRequest(RequestModel):
    project: ProjectUpdateFields


class DefaultEndpointSettingsOut(BaseModel):
    pg_settings: dict[str, str] | None = None
    autoscaling_limit_min_cu: float
    autoscaling_limit_max_cu: float
    suspend_timeout_seconds: int


class ProjectListItem(BaseModel):
    id: str
    platform_id: str
    region_id: str
    name: str
    provisioner: str
    default_endpoint_settings: DefaultEndpointSettingsOut | None = None
    settings: dict[str, Any] | None = None
    pg_version: int
    proxy_host: str
    branch_logical_size_limit: int
    branch_logical_size_limit_bytes: int
    store_passwords: bool
    active_time: int
    cpu_used_sec: int
    creation_source: str
    created_at: datetime
    updated_at: datetime
    synthetic_storage_size: int | None = None
    owner_id: str
    org_id: str | None = None
    history_retention_seconds: int | None = None


class Project(BaseModel):
    data_storage_bytes_hour: int
    data_transfer_bytes: int
    written_data_bytes: int
    compute_time_seconds: int
    active_time_seconds: int
    cpu_used_sec: int
    id: str
    platform_id: str
    region_id: str
    name: str
    provisioner: str
    default_endpoint_settings: DefaultEndpointSettingsOut | None = None
    settings: dict[str, Any] | None = None
    pg_version: int
    proxy_host: str
    branch_logical_size_limit: int
    branch_logical_size_limit_bytes: int
    store_passwords: bool
    creation_source: str
    history_retention_seconds: int
    created_at: datetime
    updated_at: datetime
    synthetic_storage_size: int | None = None
    consumption_period_start: datetime
    consumption_period_end: datetime
    owner_id: str
    org_id: str | None = None
    default_branch_id: str | None = None


class ProjectsResponse(BaseModel):
    projects: list[ProjectListItem]
    pagination: Pagination | None = None
    applications: dict[str, list[str]] = Field(default_factory=dict)
    integrations: dict[str, list[str]] = Field(default_factory=dict)


class ProjectResponse(BaseModel):
    project: Project


class ProjectOperations(BaseModel):
    project: Project
    operations: list[Operation]


class CreatedProject(BaseModel):
    project: Project
    connection_uris: list[ConnectionDetails]
    roles: list[Role]
    databases: list[Database]
    operations: list[Operation]
    branch: Branch
    endpoints: list[Endpoint]


class ConnectionURIResponse(BaseModel):
    uri: str
