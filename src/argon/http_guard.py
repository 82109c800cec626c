"""Deadlines and a connection cap for every HTTP listener of the process: the API
(``--api-port``), ``/sql`` and WebSocket (``--http-port``) and HTTP sniffed on the
Postgres port.

uvicorn 0.54 closes idle keep-alive connections but sets no deadline on a request's
headers or body, so a client that opens a socket and then sends a header a minute
keeps that socket, and one of Argon's descriptors, forever.  ``HttpGuard.protocols()``
gives uvicorn protocol classes (``http=``, ``ws=`` of ``uvicorn.Config``) that add:

- headers: complete within ``header_timeout`` (10 s) of the connection opening or of
  the first byte of the next request on a kept-alive connection; else 408 and close;
- body: complete within ``body_timeout`` (30 s) of its headers; else 408 and close;
- WebSocket: the upgrade accepted within ``handshake_timeout`` (10 s); else closed
  (the Postgres session behind it then has its own authentication deadline);
- at most ``max_connections`` HTTP and WebSocket connections open at once over all
  listeners; one more is answered 503 and closed at once, so HTTP clients never take
  the descriptors kept for Postgres clients (``argon.descriptors``).

``ARGON_HTTP_HEADER_TIMEOUT``, ``ARGON_HTTP_BODY_TIMEOUT`` and
``ARGON_HTTP_HANDSHAKE_TIMEOUT`` (seconds) override the deadlines.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from argon.descriptors import DescriptorBudget, current_budget

logger = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
HANDSHAKE_TIMEOUT = 10.0
_REFUSAL_LOG_INTERVAL = 10.0


def _plain(status: str, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


_TIMED_OUT = _plain("408 Request Timeout", "request not received in time")
_BUSY = _plain("503 Service Unavailable", "too many HTTP connections; retry shortly")


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        logger.warning("%s=%r is not a number of seconds; using %s", name, raw, default)
        return default
    return value if value > 0 else default


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int
    header_timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    handshake_timeout: float = HANDSHAKE_TIMEOUT

    @classmethod
    def from_budget(cls, budget: DescriptorBudget) -> HttpLimits:
        return cls(max_connections=budget.http_connections,
                   header_timeout=_env_seconds("ARGON_HTTP_HEADER_TIMEOUT", HEADER_TIMEOUT),
                   body_timeout=_env_seconds("ARGON_HTTP_BODY_TIMEOUT", BODY_TIMEOUT),
                   handshake_timeout=_env_seconds("ARGON_HTTP_HANDSHAKE_TIMEOUT",
                                                  HANDSHAKE_TIMEOUT))


class HttpGuard:
    """Counts the open HTTP/WebSocket connections of every listener that shares it."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.open = 0
        self.refused = 0
        self.timed_out = 0
        self._last_refusal_log = float("-inf")   # monotonic; a fresh boot is near 0
        self._classes: dict[str, Any] | None = None

    def admit(self) -> bool:
        if self.open >= self.limits.max_connections:
            self.refused += 1
            now = time.monotonic()
            if now - self._last_refusal_log > _REFUSAL_LOG_INTERVAL:
                self._last_refusal_log = now
                logger.warning("refusing HTTP connections: %d open, the limit is %d "
                               "(descriptors kept for Postgres clients)", self.open,
                               self.limits.max_connections)
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1

    def protocols(self) -> dict[str, Any]:
        """``http=`` and ``ws=`` for ``uvicorn.Config``, bound to this guard."""
        if self._classes is None:
            self._classes = {
                "http": type("GuardedHttp", (GuardedHttpProtocol,), {"guard": self}),
                "ws": type("GuardedWebSocket", (GuardedWebSocketProtocol,), {"guard": self}),
            }
        return self._classes

    def snapshot(self) -> dict[str, int]:
        return {"http_connections_open": self.open, "http_connections_refused": self.refused,
                "http_clients_timed_out": self.timed_out}


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines and the cap."""

    guard: ClassVar[HttpGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._admitted = False
        self._upgraded = False
        self._awaiting_headers = True

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, what, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, what: str, seconds: float) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self.guard.timed_out += 1
        logger.info("dropping HTTP client %s: %s not received within %.0fs",
                    self.client[0] if self.client else "?", what, seconds)
        if self._awaiting_headers or self.cycle is None or not self.cycle.response_started:
            self.transport.write(_TIMED_OUT)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.guard.admit():
            transport.write(_BUSY)
            transport.close()
            return
        self._admitted = True
        self._arm(self.guard.limits.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._admitted and not self._upgraded:
            self._admitted = False
            self.guard.release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._admitted and self._awaiting_headers and self._deadline is None:
            self._arm(self.guard.limits.header_timeout, "headers")
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._arm(self.guard.limits.body_timeout, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)   # its headers are in already
        super().on_response_complete()
        self._awaiting_headers = not pipelined

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol takes over the transport and this connection's slot.
        self._disarm()
        self._upgraded = True
        super().handle_websocket_upgrade()


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with a handshake deadline; it releases the
    slot its HTTP connection was admitted with."""

    guard: ClassVar[HttpGuard]

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._handshake_deadline: asyncio.TimerHandle | None = self.loop.call_later(
            self.guard.limits.handshake_timeout, self._handshake_expired)

    def _handshake_expired(self) -> None:
        self._handshake_deadline = None
        if self.handshake_complete or self.transport.is_closing():
            return
        self.guard.timed_out += 1
        logger.info("dropping WebSocket client %s: handshake not done within %.0fs",
                    self.client[0] if self.client else "?", self.guard.limits.handshake_timeout)
        self.transport.write(_TIMED_OUT)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handshake_deadline is not None:
            self._handshake_deadline.cancel()
            self._handshake_deadline = None
        try:
            super().connection_lost(exc)
        finally:
            self.guard.release()


_process_guard: HttpGuard | None = None


def configure_process_guard(budget: DescriptorBudget) -> HttpGuard:
    """The guard every listener of this process shares (``argon start`` sets it up once
    the descriptor limit is raised)."""
    global _process_guard  # noqa: PLW0603 - descriptors are a per-process resource
    _process_guard = HttpGuard(HttpLimits.from_budget(budget))
    return _process_guard


def process_guard() -> HttpGuard:
    return _process_guard or configure_process_guard(current_budget())
