"""The web console: static pages under ``/console/`` on the API port, and the few JSON
routes they need beyond Neon's API under ``/api/v2/console/``.

The pages are plain ES modules (no build step, nothing from a CDN: Argon runs offline;
CodeMirror and uPlot are vendored under ``static/vendor/``);
they call the same API v2 as neonctl does, with the API key the user signs in with.
Every ``routes_*.py`` module of this package that defines ``router`` is included, so a
page's backend is one new file.
"""

from __future__ import annotations

import importlib
import logging
import mimetypes
import pkgutil
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from argon.api.deps import authenticate

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
CONSOLE_PATH = "/console"
CONSOLE_API_PREFIX = "/api/v2/console"

# Everything the console loads comes from Argon itself (vendored libraries included):
# scripts from 'self' only, no inline script, no eval.  Inline styles stay allowed: the
# pages and CodeMirror/uPlot size and place elements with style attributes.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:", "font-src 'self'", "connect-src 'self'", "object-src 'none'",
    "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"])


class ConsoleFiles(StaticFiles):
    """The static files, each answer with the console's Content-Security-Policy."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def route_modules() -> list[str]:
    """Names of this package's ``routes_*`` modules, sorted (stable route order)."""
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                  if m.name.startswith("routes_"))


def mount_console(app: FastAPI) -> None:
    """Serve the console on ``app``: static files, its JSON routes, and ``/`` sending a
    browser to it (API clients asking ``/`` for JSON get a pointer to the API instead)."""
    # ES modules load only with a JavaScript type; some hosts' mime tables lack one.
    mimetypes.add_type("text/javascript", ".js")
    for name in route_modules():
        module = importlib.import_module(f"{__name__}.{name}")
        router = getattr(module, "router", None)
        if router is not None:
            # Not in the OpenAPI document: that one is Neon's, diffed against Neon's spec.
            app.include_router(router, prefix=CONSOLE_API_PREFIX, include_in_schema=False,
                               dependencies=[Depends(authenticate)])
    app.mount(CONSOLE_PATH, ConsoleFiles(directory=STATIC_DIR, html=True), name="console")

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(f"{CONSOLE_PATH}/", status_code=307)
        return JSONResponse({"api": "/api/v2", "docs": "/api/v2/docs",
                             "console": f"{CONSOLE_PATH}/"})
