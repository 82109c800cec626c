"""Inputs of the control services, already parsed by an interface (API, CLI, MCP).

``None`` means "not given": the service applies Neon's default.  Validation of values
(ranges, names, ids) happens in the services, so every interface gets the same errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class EndpointSettingsInput:
    autoscaling_limit_min_cu: float | None = None
    autoscaling_limit_max_cu: float | None = None
    suspend_timeout_seconds: int | None = None


@dataclass(frozen=True)
class ProjectCreate:
    name: str | None = None
    region_id: str | None = None
    pg_version: int | None = None
    history_retention_seconds: int | None = None
    default_endpoint_settings: EndpointSettingsInput | None = None
    settings: dict[str, Any] | None = None
    branch_name: str | None = None
    role_name: str | None = None
    database_name: str | None = None


@dataclass(frozen=True)
class ProjectUpdate:
    name: str | None = None
    history_retention_seconds: int | None = None
    default_endpoint_settings: EndpointSettingsInput | None = None
    settings: dict[str, Any] | None = None


@dataclass(frozen=True)
class EndpointCreate:
    branch_id: str | None = None  # required for POST /endpoints; implied under a branch
    type: str = "read_write"
    autoscaling_limit_min_cu: float | None = None
    autoscaling_limit_max_cu: float | None = None
    suspend_timeout_seconds: int | None = None
    pooler_enabled: bool | None = None
    pooler_mode: str | None = None
    disabled: bool | None = None
    pg_settings: dict[str, str] | None = None


@dataclass(frozen=True)
class EndpointUpdate:
    branch_id: str | None = None
    autoscaling_limit_min_cu: float | None = None
    autoscaling_limit_max_cu: float | None = None
    suspend_timeout_seconds: int | None = None
    pooler_enabled: bool | None = None
    pooler_mode: str | None = None
    disabled: bool | None = None
    pg_settings: dict[str, str] | None = None


@dataclass(frozen=True)
class BranchCreate:
    name: str | None = None
    parent_id: str | None = None          # id or name of the parent; default branch if None
    parent_lsn: str | None = None
    parent_timestamp: datetime | None = None
    protected: bool | None = None
    init_source: str | None = None        # "parent-data" | "schema-only"
    expires_at: datetime | None = None
    endpoints: list[EndpointCreate] = field(default_factory=list)


@dataclass(frozen=True)
class BranchUpdate:
    name: str | None = None
    protected: bool | None = None
    expires_at: datetime | None = None
    clear_expires_at: bool = False


@dataclass(frozen=True)
class BranchRestore:
    source_branch_id: str                 # id or name; the branch itself = its own history
    source_lsn: str | None = None
    source_timestamp: datetime | None = None
    preserve_under_name: str | None = None


@dataclass(frozen=True)
class DatabaseCreate:
    name: str
    owner_name: str


@dataclass(frozen=True)
class DatabaseUpdate:
    name: str | None = None
    owner_name: str | None = None
