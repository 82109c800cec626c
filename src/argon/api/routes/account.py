"""Tags ``API Key``, ``Users`` and ``Region``: what a single-tenant install answers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from argon.api import mapping as mp
from argon.api.deps import ServicesDep
from argon.api.schemas import account as wa
from argon.api.schemas.common import ID_PATTERN

api_keys = APIRouter(tags=["API Key"])
users = APIRouter(tags=["Users"])
regions = APIRouter(tags=["Region"])
_RESP = {"response_model_exclude_none": True}


@api_keys.get("/api_keys", operation_id="listApiKeys",
              response_model=list[wa.ApiKeysListResponseItem], **_RESP)
async def list_api_keys(services: ServicesDep) -> list[wa.ApiKeysListResponseItem]:
    keys = await run_in_threadpool(services.api_keys.list)
    return [mp.api_key_item(k) for k in keys]


@api_keys.post("/api_keys", operation_id="createApiKey",
               response_model=wa.ApiKeyCreateResponse, **_RESP)
async def create_api_key(services: ServicesDep,
                         body: wa.ApiKeyCreateRequest) -> wa.ApiKeyCreateResponse:
    """Create a key; its secret (``key``) is shown only in this answer."""
    key, secret = await run_in_threadpool(services.api_keys.create, body.key_name)
    return mp.api_key_created(key, secret)


@api_keys.delete("/api_keys/{key_id}", operation_id="revokeApiKey",
                 response_model=wa.ApiKeyRevokeResponse, **_RESP)
async def revoke_api_key(
    services: ServicesDep, key_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
) -> wa.ApiKeyRevokeResponse:
    key = await run_in_threadpool(services.api_keys.revoke, key_id)
    return mp.api_key_revoked(key)


@users.get("/users/me", operation_id="getCurrentUserInfo",
           response_model=wa.CurrentUserInfoResponse, **_RESP)
async def get_current_user_info(services: ServicesDep) -> wa.CurrentUserInfoResponse:
    return mp.current_user(await run_in_threadpool(services.platform.user))


@regions.get("/regions", operation_id="getActiveRegions",
             response_model=wa.ActiveRegionsResponse, **_RESP)
async def get_active_regions(
    services: ServicesDep,
    org_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> wa.ActiveRegionsResponse:
    """The one local region, under its own id (``local``, the default) and under each of
    Neon's region ids, which are accepted as names of it: a project created with
    ``region_id: aws-us-east-2`` runs here and keeps ``aws-us-east-2`` as its region."""
    return mp.regions(await run_in_threadpool(services.platform.regions))
