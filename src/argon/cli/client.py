"""The CLI's way to the running platform: Neon's API v2 over HTTP.

The CLI never opens the metadata or touches Postgres files itself; like neonctl it is a
client of the API, found through the home's state file (or flags / environment).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from argon.errors import ArgonError, Unavailable
from argon.home import BOOTSTRAP_KEY_FILE, read_state


def api_path(*parts: str) -> str:
    """``/a/b/c`` from path segments, each percent-encoded as one segment: a user's
    argument (``../api_keys/3``, a role named ``a/b``) can never become another route.
    Dots are encoded too, since clients resolve bare ``.`` and ``..`` segments."""
    return "".join("/" + quote(str(p), safe="").replace(".", "%2E") for p in parts)


class ApiError(ArgonError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ApiClient:
    def __init__(self, home: Path, api_url: str | None = None, api_key: str | None = None) -> None:
        api_url = api_url or os.environ.get("ARGON_API_URL")
        api_key = api_key or os.environ.get("ARGON_API_KEY")
        if api_url is None:
            state = read_state(home)
            if state is None:
                raise Unavailable(f"Argon is not running on home {home}: start it with "
                                  "'argon start' (or pass --api-url)")
            api_url = state["api_url"]
        if api_key is None:
            try:
                api_key = (home / BOOTSTRAP_KEY_FILE).read_text().strip()
            except OSError:
                raise Unavailable("no API key: pass --api-key or set ARGON_API_KEY") from None
        self.base = api_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base, timeout=600,
                                  headers={"Authorization": f"Bearer {api_key}"})

    def call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.ConnectError:
            raise Unavailable(f"cannot reach the Argon API at {self.base}: is 'argon start' "
                              "running?") from None
        if resp.status_code >= 400:
            try:
                message = resp.json().get("message", resp.text)
            except ValueError:
                message = resp.text
            raise ApiError(resp.status_code, message)
        return resp.json() if resp.content else None

    # -- conveniences --------------------------------------------------------------------

    def default_project(self) -> str:
        projects = self.call("GET", "/projects", params={"limit": 400})["projects"]
        if not projects:
            raise ArgonError("there is no project: create one with 'argon projects create'")
        if len(projects) > 1:
            names = ", ".join(f"{p['id']} ({p['name']})" for p in projects[:10])
            raise ArgonError(f"several projects exist; choose one with --project-id: {names}")
        return str(projects[0]["id"])

    def branch(self, project_id: str, ref: str | None) -> dict[str, Any]:
        branches = self.call("GET", api_path("projects", project_id, "branches"))["branches"]
        for b in branches:
            if (ref is None and b.get("default")) or ref in (b["id"], b["name"]):
                return b  # type: ignore[no-any-return]
        raise ArgonError(f"branch {ref!r} not found in project {project_id}" if ref
                         else f"project {project_id} has no default branch")
