"""``argon mcp``: the MCP server on stdio for local agents, as a bridge to a running Argon's
``/mcp`` endpoint (local, found through the home, or remote with ``--api-url`` and
``--api-key``).

Why a bridge and not a second copy of the control services: one Argon process owns the
computes, locks and in-memory state (a second one would fight it), and the same code then
serves local and remote agents.  Each JSON-RPC line read on stdin is POSTed as is (the
endpoint is stateless and answers JSON); answers are written back one line each.  Requests
run concurrently, so a ping or a cancellation is not stuck behind a long query.
"""

from __future__ import annotations

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import httpx

HANDSHAKE_HEADER = "mcp-protocol-version"


def mcp_url(api_url: str) -> str:
    """``http://host:port/mcp`` from the API URL the CLI uses (``.../api/v2``)."""
    base = api_url.rstrip("/")
    if base.endswith("/api/v2"):
        base = base[: -len("/api/v2")]
    return base + "/mcp"


class StdioBridge:
    def __init__(self, url: str, api_key: str, *, read_only: bool = False,
                 ca_file: Path | None = None, out: IO[str] | None = None) -> None:
        self.url = url
        headers = {"Authorization": f"Bearer {api_key}",
                   "Accept": "application/json, text/event-stream",
                   "Content-Type": "application/json"}
        if read_only:
            headers["x-read-only"] = "true"
        verify: Any = str(ca_file) if ca_file is not None and ca_file.exists() else True
        self.http = httpx.Client(headers=headers, timeout=httpx.Timeout(30, read=900),
                                 verify=verify)
        self.out = out or sys.stdout
        self._write_lock = threading.Lock()
        self._protocol: str | None = None

    def _emit(self, message: Any) -> None:
        with self._write_lock:
            self.out.write(json.dumps(message, separators=(",", ":")) + "\n")
            self.out.flush()

    def _error(self, msg_id: Any, text: str) -> None:
        if msg_id is not None:
            self._emit({"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32603,
                                                                  "message": text}})

    def forward(self, line: str) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            self._emit({"jsonrpc": "2.0", "id": None,
                        "error": {"code": -32700, "message": "Parse error"}})
            return
        msg_id = message.get("id") if isinstance(message, dict) else None
        headers = {HANDSHAKE_HEADER: self._protocol} if self._protocol else {}
        try:
            resp = self.http.post(self.url, content=line.encode(), headers=headers)
        except httpx.HTTPError as exc:
            self._error(msg_id, f"cannot reach Argon's MCP endpoint at {self.url}: {exc}")
            return
        if resp.status_code == 401:
            self._error(msg_id, f"Argon refused the API key ({resp.text.strip()})")
            return
        if not resp.content:
            return   # a notification or a response: 202 with no body
        for answer in _answers(resp):
            result = answer.get("result") if isinstance(answer, dict) else None
            if isinstance(result, dict) and "protocolVersion" in result:
                self._protocol = str(result["protocolVersion"])
            self._emit(answer)

    def serve(self, stdin: IO[str] | None = None) -> None:
        source = stdin or sys.stdin
        with ThreadPoolExecutor(max_workers=8) as pool:
            first = True
            for line in source:
                if not line.strip():
                    continue
                if first:   # the handshake before anything else: it sets the protocol
                    self.forward(line)
                    first = False
                    continue
                pool.submit(self.forward, line)
        self.http.close()


def _answers(resp: httpx.Response) -> list[Any]:
    if resp.headers.get("content-type", "").startswith("text/event-stream"):
        out = []
        for raw in resp.text.splitlines():
            if raw.startswith("data:") and raw[5:].strip():
                out.append(json.loads(raw[5:]))
        return out
    try:
        body = resp.json()
    except ValueError:
        return [{"jsonrpc": "2.0", "id": None, "error": {
            "code": -32603, "message": f"HTTP {resp.status_code}: {resp.text[:500]}"}}]
    return body if isinstance(body, list) else [body]
