"""``GET /auth`` and the single local organization (tags ``Users``, ``Organizations``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from argon.api.deps import ServicesDep
from argon.api.schemas import organizations as wo
from argon.api.schemas.common import ID_PATTERN

router = APIRouter()
_RESP = {"response_model_exclude_none": True}


@router.get("/auth", operation_id="getAuthDetails", tags=["Users"],
            response_model=wo.AuthDetailsResponse, **_RESP)
async def get_auth_details(services: ServicesDep) -> wo.AuthDetailsResponse:
    """Who the API key authenticates as: every key belongs to the install's one user
    (``account_id`` is that user's id, ``auth_method`` is ``api_key_user``)."""
    return wo.AuthDetailsResponse(**await run_in_threadpool(
        services.organization.auth_details))


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
