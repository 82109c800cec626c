"""``GET /auth`` and the single local organization (tags ``Users``, ``Organizations``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from argon.api import mapping as mp
from argon.api.deps import ApiKeyDep, ServicesDep
from argon.api.schemas import account as wa
from argon.api.schemas import organizations as wo
from argon.api.schemas.common import ID_PATTERN

router = APIRouter()
_RESP = {"response_model_exclude_none": True}


@router.get("/auth", operation_id="getAuthDetails", tags=["Users"],
            response_model=wo.AuthDetailsResponse, **_RESP)
async def get_auth_details(services: ServicesDep, key: ApiKeyDep) -> wo.AuthDetailsResponse:
    """Who the API key authenticates as: a personal key the install's one user
    (``account_id`` is that user's id, ``auth_method`` is ``api_key_user``), an
    organization key the organization (``api_key_org``), as Neon answers."""
    return wo.AuthDetailsResponse(**await run_in_threadpool(
        services.organization.auth_details, key.org_id))


@router.get("/users/me/organizations", operation_id="getCurrentUserOrganizations",
            tags=["Users", "Organizations"], response_model=wo.OrganizationsResponse,
            **_RESP)
async def get_current_user_organizations(services: ServicesDep) -> wo.OrganizationsResponse:
    """The one local organization, which owns every project of this install: tools that
    pick the only organization (neonctl without ``--org-id``) pick it."""
    orgs = await run_in_threadpool(services.organization.list)
    return wo.OrganizationsResponse(organizations=[wo.Organization(**o) for o in orgs])


@router.get("/organizations/{org_id}", operation_id="getOrganization",
            tags=["Organizations"], response_model=wo.Organization, **_RESP)
async def get_organization(
    services: ServicesDep, org_id: Annotated[str, Path(pattern=ID_PATTERN)],
) -> wo.Organization:
    """The local organization; any other id is 404."""
    return wo.Organization(**await run_in_threadpool(services.organization.get, org_id))


@router.get("/organizations/{org_id}/api_keys", operation_id="listOrgApiKeys",
            tags=["Organizations", "API Key"],
            response_model=list[wa.OrgApiKeysListResponseItem], **_RESP)
async def list_org_api_keys(
    services: ServicesDep, org_id: Annotated[str, Path(pattern=ID_PATTERN)],
) -> list[wa.OrgApiKeysListResponseItem]:
    """The organization's keys (project-scoped ones carry their ``project_id``)."""
    keys = await run_in_threadpool(services.api_keys.list, org_id)
    return [mp.org_api_key_item(k) for k in keys]


@router.post("/organizations/{org_id}/api_keys", operation_id="createOrgApiKey",
             tags=["Organizations", "API Key"], response_model=wa.OrgApiKeyCreateResponse,
             **_RESP)
async def create_org_api_key(
    services: ServicesDep, org_id: Annotated[str, Path(pattern=ID_PATTERN)],
    body: wa.OrgApiKeyCreateRequest,
) -> wa.OrgApiKeyCreateResponse:
    """An organization key; with ``project_id`` it can access only that project.  Its
    secret (``key``) is shown only in this answer."""
    key, secret = await run_in_threadpool(
        lambda: services.api_keys.create(body.key_name, org_id=org_id,
                                         project_id=body.project_id))
    return mp.org_api_key_created(key, secret)


@router.delete("/organizations/{org_id}/api_keys/{key_id}", operation_id="revokeOrgApiKey",
               tags=["Organizations", "API Key"], response_model=wa.OrgApiKeyRevokeResponse,
               **_RESP)
async def revoke_org_api_key(
    services: ServicesDep, org_id: Annotated[str, Path(pattern=ID_PATTERN)],
    key_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
) -> wa.OrgApiKeyRevokeResponse:
    key = await run_in_threadpool(services.api_keys.revoke, key_id, org_id)
    return mp.org_api_key_revoked(key)
