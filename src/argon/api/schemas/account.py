"""API keys, the current user and regions (tags ``API Key``, ``Users``, ``Region``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from argon.api.schemas.common import RequestModel


class ApiKeyCreateRequest(RequestModel):
    key_name: str = Field(min_length=1, max_length=256)


class OrgApiKeyCreateRequest(ApiKeyCreateRequest):
    project_id: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,60}$")


class ApiKeyCreatorData(BaseModel):
    id: str
    name: str
    image: str


class ApiKeyCreateResponse(BaseModel):
    id: int
    key: str
    name: str
    created_at: datetime
    created_by: str


class ApiKeysListResponseItem(BaseModel):
    id: int
    name: str
    created_at: datetime
    created_by: ApiKeyCreatorData
    last_used_at: datetime | None = None
    last_used_from_addr: str


class ApiKeyRevokeResponse(BaseModel):
    id: int
    name: str
    created_at: datetime
    created_by: str
    last_used_at: datetime | None = None
    last_used_from_addr: str
    revoked: bool


class CurrentUserAuthAccount(BaseModel):
    email: str
    image: str
    login: str
    name: str
    provider: str


class PaymentSource(BaseModel):
    type: str


class BillingAccount(BaseModel):
    state: str
    payment_source: PaymentSource
    subscription_type: str
    payment_method: str
    quota_reset_at_last: datetime
    name: str
    email: str
    address_city: str
    address_country: str
    address_line1: str
    address_line2: str
    address_postal_code: str
    address_state: str


class CurrentUserInfoResponse(BaseModel):
    active_seconds_limit: int
    billing_account: BillingAccount
    auth_accounts: list[CurrentUserAuthAccount]
    email: str
    id: str
    image: str
    login: str
    name: str
    last_name: str
    projects_limit: int
    branches_limit: int
    max_autoscaling_limit: float
    compute_seconds_limit: int | None = None
    plan: str


class RegionResponse(BaseModel):
    region_id: str
    name: str
    default: bool
    geo_lat: str
    geo_long: str


class ActiveRegionsResponse(BaseModel):
    regions: list[RegionResponse]


class OrgApiKeyCreateResponse(ApiKeyCreateResponse):
    project_id: str | None = None


class OrgApiKeysListResponseItem(ApiKeysListResponseItem):
    project_id: str | None = None


class OrgApiKeyRevokeResponse(ApiKeyRevokeResponse):
    project_id: str | None = None
