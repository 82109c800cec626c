"""Dependencies as named ``Annotated`` aliases: the services container and the API key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from argon.control.models import ApiKey
from argon.errors import Unauthorized


async def get_services(request: Request) -> Any:
    return request.app.state.services


# The control services container (``argon.control.services``); synchronous methods.
ServicesDep = Annotated[Any, Depends(get_services)]

_bearer = HTTPBearer(auto_error=False, description="An Argon API key")


async def authenticate(
    services: ServicesDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    if creds is None or not creds.credentials:
        raise Unauthorized("missing API key: send the header 'Authorization: Bearer <api key>'")
    key = await run_in_threadpool(services.api_keys.authenticate, creds.credentials)
    if key is None:
        raise Unauthorized("invalid or revoked API key; create one with 'argon api-keys create'")
    return key  # type: ignore[no-any-return]


ApiKeyDep = Annotated[ApiKey, Depends(authenticate)]
