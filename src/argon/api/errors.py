"""The one place that turns errors into Neon's ``{code, message}`` answers.

A pure ASGI middleware gives every response an ``X-Request-ID`` (the client's, or a new
one), refuses bodies over the size limit, and turns any unexpected exception into a 500
in the same shape; exception handlers map ``argon.errors``, validation and routing errors.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from argon.errors import ArgonError, is_disk_full
from argon.logs import request_id

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # no API v2 request body comes near this
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_HTTP_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
               405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE",
               415: "UNSUPPORTED_MEDIA_TYPE", 423: "LOCKED", 503: "UNAVAILABLE",
               507: "INSUFFICIENT_STORAGE"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyTooLarge(Exception):
    pass


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_body(code: str, message: str, request_id: str) -> dict[str, str]:
    return {"code": code, "message": message, "request_id": request_id}


class RequestIdMiddleware:
    """Request ids, body size limit and a last-resort 500, for every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = given if _SAFE_REQUEST_ID.match(given) else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = rid
        request_id.set(rid)  # every log line of this request (threads included) carries it
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            length = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            await self._reply(send_with_id, 413, "PAYLOAD_TOO_LARGE", _too_large(), rid)
            return

        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            if not started:
                await self._reply(send_with_id, 413, "PAYLOAD_TOO_LARGE", _too_large(), rid)
        except Exception as exc:
            if is_disk_full(exc):
                # e.g. the metadata database could not grow: a state, not a bug.
                logger.warning("disk full in %s %s (request id %s): %s", scope.get("method"),
                               scope.get("path"), rid, exc)
                if not started:
                    await self._reply(send_with_id, 507, "INSUFFICIENT_STORAGE",
                                      _disk_full(), rid)
                return
            logger.exception("unhandled error in %s %s (request id %s)",
                             scope.get("method"), scope.get("path"), rid)
            if not started:
                await self._reply(send_with_id, 500, "INTERNAL_ERROR",
                                  f"internal error; the server log has details under "
                                  f"request id {rid}", rid)

    @staticmethod
    async def _reply(send: Send, status: int, code: str, message: str, rid: str) -> None:
        body = json.dumps(error_body(code, message, rid)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _disk_full() -> str:
    return ("the filesystem holding Argon's home is full, so this request could not be "
            "completed; free space on it (delete branches or projects you no longer need, "
            "or grow the filesystem), then retry")


def _too_large() -> str:
    return f"request body is larger than {MAX_BODY_BYTES} bytes; send a smaller body"


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        msg = str(err.get("msg", "invalid value"))
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}")
    return "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ArgonError)
    async def _argon(request: Request, exc: ArgonError) -> JSONResponse:
        if exc.status == 500 and is_disk_full(exc):
            # A generic failure whose cause was a full disk (e.g. wrapped by a rollback).
            logger.warning("disk full: %s", exc.message)
            return JSONResponse(error_body("INSUFFICIENT_STORAGE", _disk_full(),
                                           request_id_of(request)), status_code=507)
        if exc.status >= 500:
            logger.warning("%s: %s", exc.code, exc.message)
        return JSONResponse(error_body(exc.code, exc.message, request_id_of(request)),
                            status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("BAD_REQUEST", _describe_validation(exc),
                                       request_id_of(request)), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "ERROR")
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no API route {request.url.path}; see /api/v2/docs for the routes"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return JSONResponse(error_body(code, message, request_id_of(request)),
                            status_code=exc.status_code, headers=exc.headers)
