"""A loopback HTTP proxy that records every API answer, so that the answers real clients
(neonctl, the api-client, neon-api) get can be checked against Neon's schema."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.compat.neon_spec import NeonSpec

# Older routes Argon accepts for clients that still use them, checked as their successor.
ALIASES = {("POST", "/reveal_password"): "GET", ("POST", "/set_as_primary"): "POST"}

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
        "proxy-connection", "upgrade", "te", "trailer"}


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ex: Exchange) -> None:
        with self.lock:
            self.exchanges.append(ex)

    def check(self, spec: NeonSpec, prefix: str = "/api/v2") -> set[str]:
        """Validate every recorded JSON answer; returns the operation ids seen."""
        seen: set[str] = set()
        failures: list[str] = []
        for ex in list(self.exchanges):
            if not ex.path.startswith(prefix + "/") or ex.path.startswith(prefix + "/openapi"):
                continue
            if "json" not in ex.content_type:
                failures.append(f"{ex.method} {ex.path} -> {ex.status}: not JSON")
                continue
            method, path = ex.method, ex.path[len(prefix):]
            for (m, suffix), successor in ALIASES.items():
                if method == m and path.endswith(suffix):
                    method = successor
                    path = path.replace("/set_as_primary", "/set_as_default")
            try:
                seen.add(spec.validate(method, path, ex.status, ex.json()))
            except AssertionError as exc:
                failures.append(str(exc))
        assert not failures, "responses that break Neon's contract:\n" + "\n".join(failures)
        return seen


class RecordingProxy:
    def __init__(self, upstream: str, recorder: Recorder) -> None:
        self.upstream = upstream.rstrip("/")
        self.recorder = recorder
        self.client = httpx.Client(timeout=120)
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> RecordingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.client.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _HOP and k.lower() != "host"}
                resp = proxy.client.request(self.command, proxy.upstream + self.path,
                                            headers=headers, content=body)
                data = resp.content
                proxy.recorder.add(Exchange(self.command, urlsplit(self.path).path,
                                            resp.status_code,
                                            resp.headers.get("content-type", ""), data))
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

        return Handler
