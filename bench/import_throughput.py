"""Import throughput: ``argon import`` (``POST /projects/{id}/import``) against plain
``pg_dump -Fc`` + ``pg_restore --no-owner -j2`` between two local servers, same run.

A plain source Postgres (the same install Argon uses) holds one table of about ``--mb``
MB plus a small one; each run imports it into a new Argon branch (dump, restore through
the compute's socket as the owner, row counts checked on both sides) and, as the
baseline, copies it with the same tools and flags into a fresh database of a second
plain server. Throughput is the source database's size over the wall time.

    .venv/bin/python bench/import_throughput.py [--runs 3] [--mb 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from argon.pg import pg_os_user
from bench.report import p50, table, write_section
from tests.fixtures.argon_env import kill_leftover_postgres, make_env, wait_operations
from tests.fixtures.common import TEST_ROOT
from tests.fixtures.pgserver import PgServer, make_pg_server


def server(root: Path, name: str) -> PgServer:
    d = root / name
    d.mkdir()
    os.chmod(d, 0o755)
    s = make_pg_server(d, pg_os_user())
    s.start()
    s.create_role("bench", "bench-pw")
    with s.connect() as c:
        c.execute("ALTER ROLE bench SUPERUSER")
    return s


def fill(src: PgServer, mb: int) -> int:
    with src.connect() as c:
        c.execute("CREATE DATABASE shop")
    with src.connect(dbname="shop") as c:
        rows = mb * 1024 * 1024 // 140          # ~140 bytes a row on disk
        c.execute("CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz, "
                  "payload text)")
        c.execute("INSERT INTO events (at, payload) SELECT now(), repeat(md5(g::text), 2) "
                  "FROM generate_series(1, %s) g", (rows,))
        c.execute("CREATE TABLE kinds AS SELECT g AS id, 'k' || g AS name "
                  "FROM generate_series(1, 100) g")
        c.execute("VACUUM ANALYZE")
        size = c.execute("SELECT pg_database_size('shop')").fetchone()
    assert size is not None
    return int(size[0])


def plain_copy(src: PgServer, dst: PgServer, run: int, work: Path) -> float:
    with dst.connect() as c:
        c.execute(f"CREATE DATABASE copy{run}")
    env = {**os.environ, "PGPASSWORD": "bench-pw"}
    dump = work / f"plain{run}.dump"
    t0 = time.perf_counter()
    subprocess.run([src.install.bin("pg_dump"), "-Fc", "--no-sync", "-f", str(dump),
                    src.tcp_dsn("bench", "bench-pw", "shop")], check=True, env=env)
    subprocess.run([src.install.bin("pg_restore"), "--no-owner", "--no-acl", "-j2",
                    "--exit-on-error", "-d", dst.tcp_dsn("bench", "bench-pw", f"copy{run}"),
                    str(dump)], check=True, env=env)
    took = time.perf_counter() - t0
    dump.unlink()
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mb", type=int, default=100)
    args = ap.parse_args()
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-import-", dir=TEST_ROOT))
    os.chmod(root, 0o755)
    env = make_env("bench-import")
    src = dst = None
    try:
        src, dst = server(root, "source"), server(root, "plain-target")
        size = fill(src, args.mb)
        env.start()
        r = env.api("POST", "/projects", json={"project": {"name": "bench-import"}})
        assert r.status_code == 201, r.text
        pid = r.json()["project"]["id"]
        wait_operations(env.api, pid, r.json()["operations"])
        argon_s, plain_s = [], []
        for run in range(args.runs):
            plain_s.append(plain_copy(src, dst, run, root))
            t0 = time.perf_counter()
            r = env.api("POST", f"/projects/{pid}/import", json={
                "source": {"connection_uri": src.tcp_dsn("bench", "bench-pw", "shop")},
                "branch": {"name": f"imported-{run}"}})
            argon_s.append(time.perf_counter() - t0)
            assert r.status_code == 201, r.text
            print(f"run {run}: argon {argon_s[-1]:.1f} s, plain {plain_s[-1]:.1f} s",
                  flush=True)
            b = r.json()["branch_id"]
            wait_operations(env.api, pid, env.api(
                "DELETE", f"/projects/{pid}/branches/{b}").json()["operations"])
        mib = size / 2**20
        a, p = p50(argon_s), p50(plain_s)
        body = ("## Import throughput (`bench/import_throughput.py`)\n\n"
                f"Source: one database of {mib:.0f} MiB (`pg_database_size`: a "
                f"{args.mb} MB-class table and a small one) on a plain local Postgres; "
                f"{args.runs} runs, p50.\n\n" + table(
                    ["copy", "wall time", "throughput", "vs plain"],
                    [["`argon import` into a new branch (API)", f"{a:.1f} s",
                      f"{mib / a:.1f} MiB/s", f"{a / p:.2f}x"],
                     ["plain `pg_dump -Fc` + `pg_restore -j2` to another server",
                      f"{p:.1f} s", f"{mib / p:.1f} MiB/s", "1.00x"]]) +
                "\n\nArgon's time includes creating the branch and starting its compute, "
                "the restore list filtering, and exact row counts of every table on both "
                "sides. Sync lag (`--sync`, logical replication): `bench/import_sync.py`.\n")
        write_section("import", "python bench/import_throughput.py " + " ".join(sys.argv[1:]),
                      body)
        print(body)
    finally:
        env.stop()
        kill_leftover_postgres(env.home)
        for s in (src, dst):
            if s is not None:
                s.stop()
        shutil.rmtree(env.home, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
