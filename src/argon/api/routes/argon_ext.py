"""Argon's own additions beside Neon's API (not in Neon's spec): platform status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from argon.api.deps import ApiKeyDep, ServicesDep

router = APIRouter(tags=["Argon"])


@router.get("/argon/status", operation_id="getArgonStatus")
async def argon_status(services: ServicesDep, _key: ApiKeyDep) -> dict[str, Any]:
    """What runs: URLs, ports, clone driver, Postgres installs, projects and endpoints."""
    return await run_in_threadpool(services.platform.status)  # type: ignore[no-any-return]
