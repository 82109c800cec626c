"""The MCP server itself (official ``mcp`` SDK, low-level ``Server`` so the tools' input
schemas are exactly the contract's): list the tools, validate arguments, run a handler in
a worker thread (the control services are synchronous) and turn errors into tool errors.

Read-only mode hides the tools that are not ``read_only_safe`` and refuses them if called
anyway; it is on for the whole server (``read_only=True``) or per HTTP request, as Neon's:
the ``readonly=true`` query parameter or the ``x-read-only: true`` header.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server

from argon.control import key_scope
from argon.errors import ArgonError
from argon.mcp.handlers import Handlers, ToolError, migrations_of, run_tool
from argon.mcp.tools import BY_NAME, check_arguments, visible

logger = logging.getLogger(__name__)

INSTRUCTIONS = ("Argon: a self-hosted, Neon-compatible Postgres. The tools have the names "
                "and arguments of Neon's MCP server; use prepare_database_migration / "
                "complete_database_migration for schema changes.")


def _truthy(value: str | None) -> bool | None:
    return None if value is None else value.strip().lower() == "true"


def request_read_only(ctx: Any, default: bool) -> bool:
    req = getattr(ctx, "request", None)
    if req is None:
        return default
    query = _truthy(getattr(req, "query_params", {}).get("readonly"))
    if query is not None:
        return query
    header = _truthy(getattr(req, "headers", {}).get("x-read-only"))
    return default if header is None else header


def request_key(ctx: Any) -> Any:
    """The API key the HTTP gate authenticated for this request (``None`` without one)."""
    req = getattr(ctx, "request", None)
    state = getattr(req, "scope", {}).get("state") or {}
    return state.get("argon_api_key")


def build_server(services: Any, proxy_host: str, *, read_only: bool = False) -> Server:
    from argon import __version__  # noqa: PLC0415

    migrations_of(services)   # made here, once, not raced for by two worker threads

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        ro = request_read_only(ctx, read_only)
        return types.ListToolsResult(tools=[
            types.Tool(name=t.name, description=t.description, input_schema=t.input_schema(),
                       annotations=types.ToolAnnotations(**_annotations(t)))
            for t in visible(ro)])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        ro = request_read_only(ctx, read_only)
        tool = BY_NAME.get(params.name)
        try:
            if tool is None:
                raise ToolError(f"unknown tool {params.name!r}")
            if ro and not tool.read_only_safe:
                raise ToolError(f"{tool.name} is not available in read-only mode")
            args = check_arguments(tool, params.arguments)
            key = request_key(ctx)
            key_scope.bind(key)   # inherited by the worker thread below
            key_scope.check_project(args.get("projectId"), key)
            handlers = Handlers(services, proxy_host, read_only=ro)
            texts = await anyio.to_thread.run_sync(run_tool, handlers, tool.name, args)
        except (ToolError, ValueError, ArgonError) as exc:
            return types.CallToolResult(content=[types.TextContent(type="text", text=str(exc))],
                                        is_error=True)
        except Exception as exc:  # noqa: BLE001 - an agent gets a message, the log the trace
            logger.exception("MCP tool %s failed", params.name)
            return types.CallToolResult(content=[types.TextContent(
                type="text", text=f"{params.name} failed: {exc}")], is_error=True)
        return types.CallToolResult(content=[types.TextContent(type="text", text=t)
                                             for t in texts])

    return Server("argon", version=__version__, instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)


def _annotations(tool: Any) -> dict[str, Any]:
    a = tool.annotations()
    return {"title": a["title"], "read_only_hint": a["readOnlyHint"],
            "destructive_hint": a["destructiveHint"], "open_world_hint": a["openWorldHint"]}
