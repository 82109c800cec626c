"""Auth details and organizations (tags ``Users``, ``Organizations``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class AuthDetailsResponse(BaseModel):
    account_id: str
    auth_method: Literal["keycloak", "session_cookie", "api_key_user", "api_key_org", "oauth"]
    auth_data: str | None = None


class Organization(BaseModel):
    id: str
    name: str
    handle: str
    plan: str
    created_at: datetime
    managed_by: str
    updated_at: datetime
    allow_hipaa_projects: bool | None = None
    require_mfa: bool | None = None


class OrganizationsResponse(BaseModel):
    organizations: list[Organization]
