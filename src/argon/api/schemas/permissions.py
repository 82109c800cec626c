"""Project permissions (tag ``Project``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from argon.api.schemas.common import RequestModel


class GrantPermissionToProjectRequest(RequestModel):
    email: str = Field(min_length=1, max_length=256)


class ProjectPermission(BaseModel):
    id: str
    granted_to_email: str
    granted_at: datetime
    revoked_at: datetime | None = None


class ProjectPermissions(BaseModel):
    project_permissions: list[ProjectPermission]
