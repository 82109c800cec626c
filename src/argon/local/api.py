"""The few Neon API v2 calls the door makes, over HTTP (local or remote Argon alike)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from argon.cli.client import api_path
from argon.errors import ArgonError, Unavailable


class ArgonApiError(ArgonError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ArgonApi:
    def __init__(self, api_url: str, api_key: str) -> None:
        self.base = api_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base, timeout=300,
                                       headers={"Authorization": f"Bearer {api_key}"})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, *path: str, **kw: Any) -> Any:
        try:
            resp = await self._http.request(method, api_path(*path), **kw)
        except httpx.TransportError as e:
            raise Unavailable(f"cannot reach the Argon API at {self.base}: {e or type(e).__name__}"
                              ) from None
        if resp.status_code >= 400:
            try:
                message = resp.json().get("message", resp.text)
            except ValueError:
                message = resp.text
            raise ArgonApiError(resp.status_code, message)
        return resp.json() if resp.content else None

    async def wait_operations(self, project_id: str, ops: list[dict[str, Any]],
                              timeout: float = 300) -> None:
        """Poll each operation until it settles, as Neon clients do."""
        loop = asyncio.get_running_loop()
        for op in ops:
            deadline = loop.time() + timeout
            while True:
                status = (await self.call("GET", "projects", project_id, "operations",
                                          op["id"]))["operation"]["status"]
                if status in ("finished", "skipped", "cancelled"):
                    break
                if status in ("failed", "error") or loop.time() > deadline:
                    raise ArgonError(f"operation {op['action']} ({op['id']}) {status}")
                await asyncio.sleep(0.2)

    async def only_project(self) -> str:
        projects = (await self.call("GET", "projects", params={"limit": 400}))["projects"]
        if len(projects) != 1:
            raise ArgonError("set NEON_PROJECT_ID (or --project-id): "
                             f"{len(projects)} projects are visible to this API key")
        return str(projects[0]["id"])

    async def branches(self, project_id: str) -> list[dict[str, Any]]:
        return list((await self.call("GET", "projects", project_id, "branches"))["branches"])
