"""The remote MCP endpoint on the API port: ``/mcp`` (streamable HTTP), authenticated with
the API's Bearer keys.

Stateless JSON mode: every POST is answered on its own (no session to lose when Argon
restarts, and ``argon mcp``'s stdio bridge can forward one line per POST).  The session
manager's task group lives in the API app's lifespan.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from argon.control.oauth import authenticate_bearer, read_only_grant
from argon.mcp.server import build_server

MCP_PATH = "/mcp"
KEY_STATE = "argon_api_key"
SSE_PATH, SSE_MESSAGES = "/sse", "/messages/"


class BearerKeyGate:
    """Lets a request through only with a valid API key (as the API's ``authenticate``)."""

    def __init__(self, app: ASGIApp, services: Any, issuer: str | None = None) -> None:
        self.app, self.services = app, services
        # where MCP clients find the OAuth server (RFC 9728), when it is mounted
        self.challenge = b'Bearer realm="argon"' if issuer is None else (
            f'Bearer realm="argon", resource_metadata="{issuer}'
            '/.well-known/oauth-protected-resource/mcp"').encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        scheme, _, token = headers.get("authorization", "").partition(" ")
        key = None
        if scheme.lower() == "bearer" and token.strip():
            client = scope.get("client")
            key = await run_in_threadpool(authenticate_bearer, self.services, token.strip(),
                                          client[0] if client else None)
        if key is None:
            message = ("invalid or revoked API key" if token else
                       "missing API key: send the header 'Authorization: Bearer <api key>'")
            body = json.dumps({"code": "", "message": message}).encode()
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", self.challenge)]})
            await send({"type": "http.response.body", "body": body})
            return
        # the tools read it back from the request (a project-scoped key: key_scope)
        scope.setdefault("state", {})[KEY_STATE] = key
        if await run_in_threadpool(read_only_grant, self.services, token.strip()):
            # Neon's rule: an OAuth token granted without the "write" scope is read-only
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"]
                                          if k.lower() != b"x-read-only"]
                     + [(b"x-read-only", b"true")]}
            scope["query_string"] = b""
        await self.app(scope, receive, send)


def mount_mcp(app: Any, services: Any, proxy_host: str, issuer: str | None = None) -> None:
    """Add ``/mcp`` to the FastAPI app and run the MCP session manager in its lifespan."""
    manager = StreamableHTTPSessionManager(
        app=build_server(services, proxy_host), json_response=True, stateless=True,
        # Hosts differ by mode (127.0.0.1:port, api.<domain>); the API key is the gate.
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    gate = BearerKeyGate(manager.handle_request, services, issuer)

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await gate(scope, receive, send)

    app.router.add_route(MCP_PATH, _AsgiEndpoint(endpoint), methods=["GET", "POST", "DELETE"],
                         include_in_schema=False)
    _mount_sse(app, services, proxy_host, issuer)
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with manager.run(), previous(a) as state:
            yield state

    app.router.lifespan_context = lifespan


class _AsgiEndpoint:
    """Marks a raw ASGI callable so Starlette's Route passes (scope, receive, send)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _mount_sse(app: Any, services: Any, proxy_host: str, issuer: str | None) -> None:
    """The older HTTP+SSE transport (``GET /sse`` + ``POST /messages/``) for clients that
    still use it; read-only is decided by the ``GET``'s header or query."""
    sse = SseServerTransport(SSE_MESSAGES, security_settings=TransportSecuritySettings(
        enable_dns_rebinding_protection=False))

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        query = scope.get("query_string", b"").decode("latin-1")
        read_only = ("readonly=true" in query.lower()
                     or headers.get("x-read-only", "").strip().lower() == "true")
        server = build_server(services, proxy_host, read_only=read_only)
        async with sse.connect_sse(scope, receive, send) as (read, write):
            await server.run(read, write, server.create_initialization_options())

    app.router.add_route(SSE_PATH, _AsgiEndpoint(BearerKeyGate(stream, services, issuer)),
                         methods=["GET"], include_in_schema=False)
    app.router.mount(SSE_MESSAGES, BearerKeyGate(sse.handle_post_message, services, issuer))
