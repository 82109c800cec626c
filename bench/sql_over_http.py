"""SQL over HTTP round trips against the same query sent directly with psycopg.

Starts a throwaway Postgres (as the unprivileged account) and the /sql handler under
uvicorn on loopback, then times, for ``SELECT 1`` and for 1,000 rows:
  - direct: psycopg on an open connection (the floor),
  - /sql pooled: ``Neon-Pool-Opt-In: true``, as the serverless driver sends it,
  - /sql unpooled: a fresh server connection per request (Neon's default without opt-in).
Each is the median of N round trips after a warm-up. Run:

    .venv/bin/python bench/sql_over_http.py [-n 200]
"""

from __future__ import annotations

import argparse
import sys
import contextlib
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import psycopg
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from argon.pg import pg_os_user  # noqa: E402
from argon.proxy.serverless.sql_over_http import ScramSqlResolver, SqlOverHttpHandler  # noqa: E402
from tests.fixtures.common import free_port  # noqa: E402
from tests.fixtures.pgserver import make_pg_server  # noqa: E402

ROLE, PASSWORD, ENDPOINT = "bench", "npg_bench-Pa55", "ep-bench-00000001"
QUERIES = {"SELECT 1": "SELECT 1 AS x",
           "1,000 rows": "SELECT g AS id, md5(g::text) AS name, g * 1.5 AS score, g % 2 = 0 "
                         "AS even FROM generate_series(1, 1000) g"}


def median_ms(fn: Callable[[], object], n: int) -> float:
    for _ in range(max(3, n // 10)):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.report import table, write_section  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="round trips per measurement")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-sql-", dir="/tmp"))
    os.chmod(root, 0o755)
    pg = make_pg_server(root, pg_os_user())
    pg.start()
    try:
        pg.create_role(ROLE, PASSWORD)
        with pg.connect() as conn:
            conn.execute(f"CREATE DATABASE {ROLE} OWNER {ROLE}")
            verifier = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                                    (ROLE,)).fetchone()[0]  # type: ignore[index]
        run(pg, str(verifier), args.n)
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def run(pg: object, verifier: str, n: int) -> None:
    socket_dir, port = str(pg.socket_dir), pg.port  # type: ignore[attr-defined]

    async def endpoint_for(host: str | None, p: int | None, options: str | None) -> str:
        return ENDPOINT

    async def role_secret(endpoint_id: str, role: str) -> str | None:
        return verifier if role == ROLE else None

    async def wake(endpoint_id: str) -> tuple[str, int]:
        return socket_dir, port

    handler = SqlOverHttpHandler(ScramSqlResolver(endpoint_for, role_secret, wake))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await handler.aclose()

    app = Starlette(routes=[Route("/sql", handler.handle, methods=["POST", "OPTIONS"])],
                    lifespan=lifespan)
    http_port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=http_port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)

    conn_string = f"postgresql://{ROLE}:{PASSWORD}@{ENDPOINT}.local/{ROLE}"
    direct = psycopg.connect(host=socket_dir, port=port, user=ROLE, dbname=ROLE,
                             autocommit=True)
    rows: list[tuple[str, float, float, float]] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}") as client:
            def http_call(query: str, pooled: bool) -> Callable[[], object]:
                headers = {"Neon-Connection-String": conn_string}
                if pooled:
                    headers["Neon-Pool-Opt-In"] = "true"

                def call() -> object:
                    r = client.post("/sql", json={"query": query, "params": []},
                                    headers=headers)
                    r.raise_for_status()
                    return r.json()
                return call

            for label, query in QUERIES.items():
                d = median_ms(lambda q=query: direct.execute(q).fetchall(), n)  # type: ignore[misc]
                p = median_ms(http_call(query, True), n)
                u = median_ms(http_call(query, False), max(20, n // 4))
                rows.append((label, d, p, u))
    finally:
        direct.close()
        server.should_exit = True
        thread.join(30)

    table_rows = [[label, f"{d:.3f}", f"{p:.3f}", f"{u:.3f}", f"{p / d:.1f}x"]
                  for label, d, p, u in rows]
    text = "\n".join([
        "## SQL over HTTP (issue 4)", "",
        f"`POST /sql` round trip (httpx keep-alive client, loopback) against the same query "
        f"with psycopg on an open connection; median of {n} calls, milliseconds. Pooled = "
        "`Neon-Pool-Opt-In: true` (the driver sends it for -pooler hosts).", "",
        table(["query", "direct", "/sql pooled", "/sql unpooled", "pooled/direct"],
              table_rows)])
    print(text)
    write_section("sql", "python bench/sql_over_http.py -n " + str(n), text)


if __name__ == "__main__":
    main()
