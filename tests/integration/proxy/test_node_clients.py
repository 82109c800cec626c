"""A first check with the real npm clients (the lead's compat suite goes further):
@neondatabase/serverless Pool/Client over WebSocket (query, transaction, LISTEN) and
node-postgres over TLS verified against Argon's CA."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from argon.proxy.http import HttpServer, create_http_app, start_http_server
from tests.fixtures.pgserver import PgServer
from tests.fixtures.proxy import ProxyEnv

COMPAT = Path(__file__).resolve().parents[2] / "compat"
SCRIPT = Path(__file__).parent / "node" / "ws_and_pg.mjs"


async def _no_sql(request: Request) -> Response:
    return JSONResponse({})


@pytest.fixture
def http(proxy_env: ProxyEnv) -> Iterator[HttpServer]:
    server = proxy_env.call(start_http_server(
        create_http_app(proxy_env.proxy, _no_sql), "127.0.0.1", 0))
    try:
        yield server
    finally:
        proxy_env.call(server.stop())


def test_serverless_driver_and_node_postgres(proxy_env: ProxyEnv, http: HttpServer,
                                             pg_server: PgServer, argon_tmp: Path) -> None:
    node = shutil.which("node")
    if node is None or not (COMPAT / "node_modules" / "@neondatabase" / "serverless").exists():
        pytest.skip("node or tests/compat/node_modules (npm ci in tests/compat) is missing")
    pg_server.create_role("gina", "pw-gina")
    # ESM resolves packages upwards from the script: run a copy beside a node_modules link.
    work = argon_tmp / "node"
    work.mkdir()
    (work / "node_modules").symlink_to(COMPAT / "node_modules")
    script = work / SCRIPT.name
    script.write_text(SCRIPT.read_text())
    out = subprocess.run([node, str(script), str(http.port), str(proxy_env.port),
                          str(proxy_env.tls.ca_file)],  # type: ignore[union-attr]
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"pool": [{"n": 42}], "tx": [{"s": 3}], "listen": "hello",
                      "nodePostgres": [{"a": 42}]}
