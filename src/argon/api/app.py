"""The Neon API v2 compatible application: ``create_app(services)``.

Nothing happens at import time.  Routes live under ``/api/v2`` with Neon's paths and
operation ids; every route but the docs needs ``Authorization: Bearer <api key>``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from argon.api.deps import authenticate
from argon.api.errors import RequestIdMiddleware, install_error_handlers
from argon.api.routes import (account, branches, consumption, databases, endpoints,
                              operations, organizations, permissions, projects, roles,
                              unavailable)
from argon.api.routes import imports as import_routes
from argon.api.schemas.common import GeneralError as GeneralErrorModel

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v2"

DESCRIPTION = """\
Neon API v2 compatible management API of Argon: Neon's paths, operation ids and object
shapes, so Neon tools work with only their API host changed.  Authenticate with
`Authorization: Bearer <api key>`.  Errors are `{code, message, request_id}`; `423`
means an operation still holds the object: retry.

Fields Neon requires that a self-hosted install has no real value for are present with
neutral values: consumption counters (`cpu_used_sec`, `active_time_seconds`,
`compute_time_seconds`, `written_data_bytes`, `data_transfer_bytes`,
`data_storage_bytes_hour`) are 0; `provisioner` is `k8s-pod`; `creation_source` is
`argon`; `platform_id` is `argon`; `consumption_period_end` is far in the future;
`passwordless_access` is false; branch `annotation` is empty; API keys' `created_by`
is the single local user and `last_used_from_addr` is empty; `GET /users/me` reports
the local administrator with an inactive billing account; `GET /projects/shared` is
always empty.  Accepted but ignored: `org_id`, `provisioner`, `region_id` on
endpoints, `store_passwords`, `archived`, `annotation_value`, `pgbouncer_settings`,
`passwordless_access`, `name` on endpoints, `sort_by`/`sort_order` (echoed),
`include_deleted`, `hard_delete`.

One machine, one account: `GET /auth` reports the local user (`api_key_user`);
`GET /users/me/organizations` reports one local organization that owns every project.
Regions: Neon's region ids (`aws-us-east-2`, `azure-gwc`, ...) are accepted as names of
the one local region; a project keeps the id it was created with (`region_id` echoes
it), and `GET /regions` lists them all with `local` as the default.  Project permissions
are recorded and listed but change no access (every API key reaches every project).
Consumption history reports what Argon measures (compute run time, CU seconds, WAL
written, bytes on disk); see each call's description.
"""


def create_app(services: Any, *, proxy_host: str | None = None) -> FastAPI:
    """Build the API over a control services container.

    ``proxy_host`` is what Neon calls the project's ``proxy_host``: the domain under which
    endpoint hosts live; by default the services' public host (configured domain or the
    listen address).
    """
    if proxy_host is None:
        settings = getattr(getattr(services, "ctx", None), "settings", None)
        proxy_host = str(getattr(settings, "public_host", None) or "localhost")
    app = FastAPI(
        title="Argon API",
        version="2.0.0",
        description=DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.services = services
    app.state.proxy_host = proxy_host
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)

    auth = [Depends(authenticate)]
    for router in (projects.router, branches.router, databases.router, roles.router,
                   endpoints.router, operations.router, account.api_keys, account.users,
                   account.regions, unavailable.router, organizations.router,
                   permissions.router, consumption.router, import_routes.router):
        app.include_router(router, prefix=API_PREFIX, dependencies=auth,
                           responses={"default": {"model": GeneralErrorModel,
                                                  "description": "General error"}})

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    from argon.console import mount_console  # noqa: PLC0415 - the console needs the API's auth

    mount_console(app)
    from argon.api.oauth import issuer_of, mount_oauth  # noqa: PLC0415
    from argon.mcp.http import mount_mcp  # noqa: PLC0415 - MCP's /mcp on the API port

    issuer = issuer_of(services) if hasattr(services, "ctx") else None
    if issuer is not None:
        mount_oauth(app, services, issuer)   # sign-in for neonctl and MCP clients
    mount_mcp(app, services, proxy_host, issuer)
    return app

