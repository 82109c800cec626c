"""Dependencies as named ``Annotated`` aliases: the services container and the API key.

``authenticate`` is the door of every API v2 and console route: it checks the key, binds
it for the request (``argon.control.key_scope``) and refuses a project-scoped key on any
route whose path names another project."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from argon.control import key_scope
from argon.control.models import ApiKey
from argon.control.oauth import authenticate_bearer
from argon.errors import Unauthorized


async def get_services(request: Request) -> Any:
    return request.app.state.services


# The control services container (``argon.control.services``); synchronous methods.
ServicesDep = Annotated[Any, Depends(get_services)]

_bearer = HTTPBearer(auto_error=False, description="An Argon API key")


async def authenticate(
    request: Request,
    services: ServicesDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    if creds is None or not creds.credentials:
        raise Unauthorized("missing API key: send the header 'Authorization: Bearer <api key>'")
    # an API key, or an OAuth access token standing for one (neonctl auth, MCP clients)
    addr = request.client.host if request.client is not None else None
    key = await run_in_threadpool(authenticate_bearer, services, creds.credentials, addr)
    if key is None:
        raise Unauthorized("invalid or revoked API key; create one with 'argon api-keys create'")
    key_scope.bind(key)
    key_scope.check_project(request.path_params.get("project_id"), key)
    return key  # type: ignore[no-any-return]


ApiKeyDep = Annotated[ApiKey, Depends(authenticate)]
