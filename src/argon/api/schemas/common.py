"""Shapes shared by every tag: operations, pagination, errors."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

# Neon's id pattern for projects, branches and endpoints (path and body ids).
ID_PATTERN = r"^[a-z0-9-]{1,60}$"


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Operation(BaseModel):
    id: str
    project_id: str
    branch_id: str | None = None
    endpoint_id: str | None = None
    action: str
    status: str
    error: str | None = None
    failures_count: int
    retry_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    total_duration_ms: int


class OperationResponse(BaseModel):
    operation: Operation


class Pagination(BaseModel):
    cursor: str


class OperationsListResponse(BaseModel):
    operations: list[Operation]
    pagination: Pagination | None = None


class CursorPagination(BaseModel):
    next: str | None = None
    sort_by: str | None = None
    sort_order: str | None = None


class GeneralError(BaseModel):
    request_id: str | None = None
    code: str = Field(description="Machine-readable error code, e.g. NOT_FOUND or LOCKED")
    message: str
