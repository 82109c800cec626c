"""Console data pages benchmark: the SQL editor's and tables view's calls, and the
monitoring sampler's cost.

Starts a real Argon (``argon start --monitoring-interval 1``) on a temporary home, makes a
project with a 10,000-row table and measures over HTTP, p50/p95 of ``--runs`` calls:
- ``POST /console/.../sql`` with ``SELECT 1`` (a session as the role per call: wake
  check, SCRAM login over the unix socket, the query, the history row), beside the
  baseline of a new client connection through Argon's proxy running ``SELECT 1``;
- the same call returning 1,000 rows, and a 10,000-row SELECT cut at 1,000 rows;
- a page of 50 rows sorted by a column, and editing one cell;
- reading one hour of an endpoint's monitoring samples.
Then, in this process on a second home, the sampler's tick with one running compute and
with one suspended compute (what every interval costs per endpoint).
Writes the ``console-data`` section of docs/benchmarks.md.

Usage: python bench/console_data.py [--runs 30]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import p50, p95, table, write_section  # noqa: E402
from tests.fixtures.argon_env import running_env, wait_operations  # noqa: E402


def _timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()   # warm
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _row(name: str, xs: list[float]) -> list[str]:
    return [name, f"{p50(xs) * 1000:.1f} ms", f"{p95(xs) * 1000:.1f} ms"]


def _http_figures(runs: int) -> list[list[str]]:
    rows: list[list[str]] = []
    with running_env("bench-console-data", ["--monitoring-interval", "1"]) as env:
        try:
            body = env.api("POST", "/projects", json={"project": {"name": "bench-data"}}).json()
            pid, bid = body["project"]["id"], body["branch"]["id"]
            wait_operations(env.api, pid, body["operations"])
            uri = body["connection_uris"][0]["connection_uri"]
            db = body["databases"][0]["name"]
            with psycopg.connect(uri, autocommit=True) as conn:
                conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
                conn.execute("INSERT INTO items SELECT g, md5(g::text) "
                             "FROM generate_series(1, 10000) g")
            ep = env.api("GET", f"/projects/{pid}/endpoints").json()["endpoints"][0]["id"]
            with httpx.Client(base_url=env.api_url, timeout=120,
                              headers={"Authorization": f"Bearer {env.api_key}"}) as c:
                sql = f"/console/projects/{pid}/branches/{bid}/sql"

                def run(query: str, **kw: object) -> Callable[[], object]:
                    def go() -> None:
                        r = c.post(sql, json={"query": query, "database": db, **kw})
                        assert r.status_code == 200 and r.json()["error"] is None, r.text
                    return go

                def direct() -> None:
                    with psycopg.connect(uri, autocommit=True) as conn:
                        conn.execute("SELECT 1").fetchone()

                base = _timed(direct, runs)
                one = _timed(run("SELECT 1"), runs)
                rows.append(_row("new connection through the proxy + `SELECT 1` (baseline)",
                                 base))
                rows.append(_row("`POST /console/.../sql` `SELECT 1`", one)
                            + [f"{p50(one) / p50(base):.2f}x"])
                rows.append(_row("`POST /console/.../sql` 1,000 rows x 2 columns",
                                 _timed(run("SELECT * FROM items LIMIT 1000"), runs)))
                rows.append(_row("`POST /console/.../sql` 10,000 rows cut at 1,000",
                                 _timed(run("SELECT * FROM items", max_rows=1000), runs)))
                tables = f"/console/projects/{pid}/branches/{bid}/tables/public/items"
                rows.append(_row("page of 50 rows sorted by `name` (with the row count)",
                                 _timed(lambda: c.get(f"{tables}/rows", params={
                                     "database": db, "sort": "name", "offset": 500}), runs)))
                rows.append(_row("edit one cell by primary key",
                                 _timed(lambda: c.patch(f"{tables}/rows", json={
                                     "database": db, "key": {"id": 7}, "column": "name",
                                     "value": "x"}), runs)))
                rows.append(_row("read 1 h of monitoring samples",
                                 _timed(lambda: c.get(
                                     f"/console/projects/{pid}/endpoints/{ep}/metrics"), runs)))
        finally:
            env.stop()
            shutil.rmtree(env.home, ignore_errors=True)
    for r in rows:
        r += [""] * (4 - len(r))
    return rows


def _sampler_figures(runs: int) -> list[list[str]]:
    from argon.control import build_services  # noqa: PLC0415
    from argon.control.requests import ProjectCreate  # noqa: PLC0415
    from argon.settings import Settings  # noqa: PLC0415

    home = Path(tempfile.mkdtemp(prefix="argon-bench-sampler-"))
    home.chmod(0o755)   # the Postgres account crosses it to its data directory
    s = build_services(Settings(home=home / "home", monitoring_interval=0))
    try:
        created = s.projects.create(ProjectCreate(name="p"))
        ep = s.endpoints.list(created.project.id)[0].id
        s.runtime.ensure_running(ep)
        running = _timed(s.monitoring.tick, runs)
        s.runtime.suspend(ep)
        s.monitoring.tick()
        stopped = _timed(s.monitoring.tick, runs)
    finally:
        s.monitoring.stop()
        s.stop_all_computes()
        shutil.rmtree(home, ignore_errors=True)
    return [_row("sampler tick, one running compute (query, /proc, one insert)", running)
            + [""], _row("sampler tick, one suspended compute", stopped) + [""]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    rows = _http_figures(args.runs) + _sampler_figures(args.runs)
    body = "\n".join([
        "## Console data pages (SQL editor, tables, monitoring)",
        "",
        "Calls of the SQL editor and the tables view over HTTP against a real Argon, each "
        "opening a session as the role (no pooling of console sessions); the sampler's "
        "cost per interval measured in-process.  Ratio: against the baseline of a new "
        "client connection through Argon's proxy.",
        "",
        table(["measure", "p50", "p95", "vs baseline"], rows),
    ])
    write_section("console-data", "python bench/console_data.py", body)
    print(body)


if __name__ == "__main__":
    main()
