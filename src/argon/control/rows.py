"""Metadata rows to domain models (one place, so every service shows the same thing)."""

from __future__ import annotations

from typing import Any

from argon.control.hosts import endpoint_host
from argon.control.models import (ApiKey, Branch, BranchState, Database, Endpoint,
                                  EndpointSettings, EndpointState, EndpointType, Operation,
                                  OperationAction, OperationStatus, Project, Role)
from argon.settings import Settings

Row = Any  # sqlalchemy.Row: attribute access by column name


def project_from_row(r: Row, default_branch_id: str | None = None,
                     storage_size: int = 0) -> Project:
    des = r.default_endpoint_settings or {}
    return Project(
        id=r.id, name=r.name, region_id=r.region_id, pg_version=r.pg_version,
        history_retention_seconds=r.history_retention_seconds,
        default_endpoint_settings=EndpointSettings(**des), settings=dict(r.settings or {}),
        owner_id="argon", created_at=r.created_at, updated_at=r.updated_at,
        default_branch_id=default_branch_id, synthetic_storage_size=storage_size)


def branch_from_row(r: Row, logical_size: int = 0) -> Branch:
    return Branch(
        id=r.id, project_id=r.project_id, parent_id=r.parent_id, parent_lsn=r.parent_lsn,
        parent_timestamp=r.parent_timestamp, name=r.name,
        current_state=BranchState(r.state), default=bool(r.is_default),
        protected=bool(r.protected), logical_size=logical_size, created_at=r.created_at,
        updated_at=r.updated_at, init_source=r.init_source, expires_at=r.expires_at,
        last_reset_at=r.last_reset_at)


def endpoint_from_row(r: Row, settings: Settings) -> Endpoint:
    return Endpoint(
        id=r.id, project_id=r.project_id, branch_id=r.branch_id, type=EndpointType(r.type),
        current_state=EndpointState(r.state), autoscaling_limit_min_cu=r.min_cu,
        autoscaling_limit_max_cu=r.max_cu, suspend_timeout_seconds=r.suspend_timeout_seconds,
        pooler_enabled=bool(r.pooler_enabled), pooler_mode=r.pooler_mode,
        disabled=bool(r.disabled), pg_settings=dict(r.pg_settings or {}),
        host=endpoint_host(settings, r.id, r.proxy_port),
        pooler_host=endpoint_host(settings, r.id, r.pooler_port, pooled=True),
        created_at=r.created_at, updated_at=r.updated_at, last_active=r.last_active,
        started_at=r.started_at, suspended_at=r.suspended_at, proxy_port=r.proxy_port,
        pooler_port=r.pooler_port)


def database_from_row(r: Row) -> Database:
    return Database(id=r.id, branch_id=r.branch_id, name=r.name, owner_name=r.owner_name,
                    created_at=r.created_at, updated_at=r.updated_at)


def role_from_row(r: Row, password: str | None = None) -> Role:
    return Role(branch_id=r.branch_id, name=r.name, protected=bool(r.protected),
                created_at=r.created_at, updated_at=r.updated_at, password=password)


def operation_from_row(r: Row) -> Operation:
    return Operation(
        id=r.id, project_id=r.project_id, branch_id=r.branch_id, endpoint_id=r.endpoint_id,
        action=OperationAction(r.action), status=OperationStatus(r.status), error=r.error,
        failures_count=r.failures_count, created_at=r.created_at, updated_at=r.updated_at,
        total_duration_ms=r.total_duration_ms)


def api_key_from_row(r: Row) -> ApiKey:
    return ApiKey(id=r.id, name=r.name, created_at=r.created_at,
                  last_used_at=r.last_used_at, revoked=bool(r.revoked), org_id=r.org_id,
                  project_id=r.project_id, last_used_from_addr=r.last_used_from_addr)
