"""The domain objects the control plane hands to every interface.

Field names and value strings are Neon's (see neon-compat.md) so that the API layer maps
them one to one.  Times are tz-aware UTC datetimes.  These are read models: services build
them from metadata rows; nothing outside ``control`` mutates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class BranchState(StrEnum):
    INIT = "init"
    RESETTING = "resetting"
    READY = "ready"
    ARCHIVED = "archived"


class EndpointState(StrEnum):
    INIT = "init"
    ACTIVE = "active"
    IDLE = "idle"


class EndpointType(StrEnum):
    READ_WRITE = "read_write"
    READ_ONLY = "read_only"


class OperationStatus(StrEnum):
    SCHEDULING = "scheduling"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    ERROR = "error"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class OperationAction(StrEnum):
    CREATE_TIMELINE = "create_timeline"
    CREATE_BRANCH = "create_branch"
    DELETE_TIMELINE = "delete_timeline"
    START_COMPUTE = "start_compute"
    SUSPEND_COMPUTE = "suspend_compute"
    APPLY_CONFIG = "apply_config"
    APPLY_STORAGE_CONFIG = "apply_storage_config"
    CHECK_AVAILABILITY = "check_availability"


@dataclass(frozen=True)
class EndpointSettings:
    """Project-level defaults for new endpoints (Neon's ``default_endpoint_settings``)."""

    autoscaling_limit_min_cu: float = 0.25
    autoscaling_limit_max_cu: float = 0.25
    suspend_timeout_seconds: int = 0  # 0 = platform default (300 s), -1 = never


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    region_id: str
    pg_version: int
    history_retention_seconds: int
    default_endpoint_settings: EndpointSettings
    settings: dict[str, Any]
    owner_id: str
    created_at: datetime
    updated_at: datetime
    default_branch_id: str | None = None
    # figures (bytes / seconds); Argon fills what it measures
    synthetic_storage_size: int = 0
    branch_logical_size_limit: int = 0


@dataclass(frozen=True)
class Branch:
    id: str
    project_id: str
    parent_id: str | None
    parent_lsn: str | None
    parent_timestamp: datetime | None
    name: str
    current_state: BranchState
    default: bool
    protected: bool
    logical_size: int
    created_at: datetime
    updated_at: datetime
    init_source: str = "parent-data"
    expires_at: datetime | None = None
    last_reset_at: datetime | None = None
    pending_state: BranchState | None = None


@dataclass(frozen=True)
class Endpoint:
    id: str
    project_id: str
    branch_id: str
    type: EndpointType
    current_state: EndpointState
    autoscaling_limit_min_cu: float
    autoscaling_limit_max_cu: float
    suspend_timeout_seconds: int
    pooler_enabled: bool
    pooler_mode: str
    disabled: bool
    pg_settings: dict[str, str]
    host: str
    pooler_host: str
    created_at: datetime
    updated_at: datetime
    pending_state: EndpointState | None = None
    last_active: datetime | None = None
    started_at: datetime | None = None
    suspended_at: datetime | None = None
    region_id: str = "local"
    proxy_port: int | None = None
    pooler_port: int | None = None
    # read_only endpoints while running: WAL bytes not replayed yet, Postgres' replay_lag
    replication_lag_bytes: int | None = None
    replication_lag_seconds: float | None = None


@dataclass(frozen=True)
class Database:
    id: int
    branch_id: str
    name: str
    owner_name: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Role:
    branch_id: str
    name: str
    protected: bool
    created_at: datetime
    updated_at: datetime
    password: str | None = None  # only on create / reset / reveal


@dataclass(frozen=True)
class Operation:
    id: str
    project_id: str
    branch_id: str | None
    endpoint_id: str | None
    action: OperationAction
    status: OperationStatus
    error: str | None
    failures_count: int
    created_at: datetime
    updated_at: datetime
    total_duration_ms: int


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked: bool = False
    org_id: str | None = None        # an organization key (Neon's org API keys)
    project_id: str | None = None    # a project-scoped key: that project only
    last_used_from_addr: str | None = None


@dataclass(frozen=True)
class ConnectionUri:
    connection_uri: str
    connection_parameters: dict[str, str]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursor: str | None


@dataclass(frozen=True)
class Mutation(Generic[T]):
    """What every mutating service call returns: the object and the operations it ran."""

    value: T
    operations: list[Operation] = field(default_factory=list)
