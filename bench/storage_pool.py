"""Issue 11 part 5 figures: branches on an ext4 home with full copies against the storage
pool (timelines in an XFS reflink image in the same home), and what the pool costs in
write throughput, in one run.

Two real Argons on homes on the root filesystem (ext4), one ``--storage-pool off``
(copies), one ``--storage-pool auto`` (the pool); each fills its default branch with
a ~1 GB table, then, alternating between the two:

- branch: ``POST /branches`` (no endpoint, parent idle) until its operations finish;
- disk added: for copies the new timeline's allocated blocks (ext4 shares nothing, so
  ``du`` is exact); for the pool the drop in the pool's free blocks (``statvfs``: shared
  extents counted once) and the growth of the image's allocation on ext4;
- write TPS: ``pgbench`` tpcb-like (default ``synchronous_commit``, 2 clients) on the
  default branch through the proxy, the same on both; and, to see the storage alone,
  on a plain cluster run by hand on each filesystem (unix socket, no proxy).

    .venv/bin/python bench/storage_pool.py [--runs 5] [--mb 1024] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from argon.pg import choose_install, pg_os_user  # noqa: E402
from argon.storage.pool import IMAGE_NAME, POOL_DIR  # noqa: E402
from bench.report import p50, p95, table, write_section  # noqa: E402
from tests.fixtures.argon_env import (ArgonEnv, kill_leftover_postgres, make_env,  # noqa: E402
                                      wait_operations)
from tests.fixtures.faults import timeline_of  # noqa: E402
from tests.fixtures.pool import pool_unavailable, release_pool  # noqa: E402

MiB = 1 << 20
ROW_BYTES = 241   # repeat('x', 200) with an int key, on disk


class Side:
    """One Argon home and its default branch."""

    def __init__(self, name: str, mode: str) -> None:
        self.name = name
        self.env: ArgonEnv = make_env(f"bench-pool-{name}", ["--storage-pool", mode])
        self.branch_s: list[float] = []
        self.ready_s: list[float] = []
        self.added: list[float] = []
        self.image_added: list[float] = []
        self.tps: list[float] = []

    def start(self) -> None:
        self.env.start(timeout=300)
        self.pid = self.env.default_project()["id"]
        self.main = next(b["id"] for b in self.api("GET", "/branches").json()["branches"]
                         if b["default"])

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.env.api(method, f"/projects/{self.pid}{path}", **kw)

    def uri(self, plain: bool = False) -> str:
        uri = str(self.env.api("GET", f"/projects/{self.pid}/connection_uri", params={
            "branch_id": self.main, "database_name": "neondb",
            "role_name": "neondb_owner"}).json()["uri"])
        # the embedded pgbench has no TLS; the proxy takes plaintext from loopback
        return uri.partition("?")[0] + "?sslmode=disable" if plain else uri

    def fill(self, mb: int) -> None:
        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")
            conn.execute("CREATE TABLE big AS SELECT g, repeat('x', 200) AS pad "
                         f"FROM generate_series(1, {mb * MiB // ROW_BYTES}) g")
            conn.execute("CHECKPOINT")
            self.data_mb = conn.execute("SELECT pg_database_size('neondb')").fetchone()[0] / MiB
        subprocess.run([choose_install().bin("pgbench"), "-i", "-s", "10", "-q",
                        self.uri(plain=True)], check=True, capture_output=True)

    def suspend(self) -> None:
        for ep in self.api("GET", "/endpoints").json()["endpoints"]:
            r = self.api("POST", f"/endpoints/{ep['id']}/suspend")
            wait_operations(self.env.api, self.pid, r.json()["operations"])

    @property
    def timelines(self) -> Path:
        return self.env.home / "timelines"

    def branch_once(self) -> None:
        self.suspend()   # a quiet parent: the branch's own cost, not the parent's writes
        os.sync()
        used0, image0 = _used(self.timelines), self._image_blocks()
        t0 = time.perf_counter()
        r = self.api("POST", "/branches", json={"branch": {}})
        wait_operations(self.env.api, self.pid, r.json()["operations"])
        self.branch_s.append(time.perf_counter() - t0)
        os.sync()
        branch = r.json()["branch"]["id"]
        if self.name == "pool":
            self.added.append((_used(self.timelines) - used0) / MiB)
            self.image_added.append((self._image_blocks() - image0) / MiB)
        else:
            self.added.append(_du(self.timelines / timeline_of(self.env.home, branch)) / MiB)
        self.api("DELETE", f"/branches/{branch}")   # keep the disk clean between runs
        time.sleep(1)

    def branch_ready_once(self) -> None:
        """A branch with an endpoint until its connection string answers SELECT 1."""
        self.suspend()
        t0 = time.perf_counter()
        r = self.api("POST", "/branches", json={"branch": {},
                                                 "endpoints": [{"type": "read_write"}]})
        assert r.status_code == 201, r.text
        with psycopg.connect(r.json()["connection_uris"][0]["connection_uri"],
                             connect_timeout=60) as conn:
            conn.execute("SELECT 1").fetchone()
        self.ready_s.append(time.perf_counter() - t0)
        self.api("DELETE", f"/branches/{r.json()['branch']['id']}")
        time.sleep(1)

    def pgbench(self, seconds: int) -> None:
        out = subprocess.run([choose_install().bin("pgbench"), "-c", "2", "-T", str(seconds),
                              "-n", self.uri(plain=True)], check=True, capture_output=True,
                             text=True).stdout
        m = re.search(r"tps = ([\d.]+)", out)
        assert m, out
        self.tps.append(float(m.group(1)))

    def _image_blocks(self) -> int:
        image = self.env.home / POOL_DIR / IMAGE_NAME
        return image.stat().st_blocks * 512 if image.exists() else 0

    def close(self) -> None:
        self.env.stop()
        kill_leftover_postgres(self.env.home)
        release_pool(self.env.home)
        if not os.path.ismount(self.env.home / "timelines"):   # a busy pool keeps its files
            shutil.rmtree(self.env.home, ignore_errors=True)   # gigabytes per run
            self.env.log_path.unlink(missing_ok=True)


class PlainCluster:
    """A hand-run Postgres in ``root`` (the pool's mount or a directory on ext4)."""

    def __init__(self, name: str, root: Path, port: int) -> None:
        self.name, self.root, self.port = name, root, port
        self.install, self.owner = choose_install(), pg_os_user()
        self.tps: list[float] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.root.mkdir(mode=0o755)
        self.owner.chown(self.root)
        pgdata = self.root / "pgdata"
        subprocess.run([self.install.bin("initdb"), "-D", str(pgdata), "-U", "postgres",
                        "--no-instructions"], check=True, capture_output=True,
                       **self.owner.popen_kwargs())
        self.proc = subprocess.Popen(
            [self.install.bin("postgres"), "-D", str(pgdata), "-k", str(self.root),
             "-c", "listen_addresses=", "-c", f"port={self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **self.owner.popen_kwargs())
        for _ in range(100):
            if (self.root / f".s.PGSQL.{self.port}").exists():
                break
            time.sleep(0.1)
        subprocess.run([*self._pgbench(), "-i", "-s", "10", "-q", "postgres"], check=True,
                       capture_output=True)

    def _pgbench(self) -> list[str]:
        return [self.install.bin("pgbench"), "-h", str(self.root), "-p", str(self.port),
                "-U", "postgres"]

    def pgbench(self, seconds: int) -> None:
        out = subprocess.run([*self._pgbench(), "-c", "2", "-T", str(seconds), "-n",
                              "postgres"], check=True, capture_output=True, text=True).stdout
        m = re.search(r"tps = ([\d.]+)", out)
        assert m, out
        self.tps.append(float(m.group(1)))

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(60)
        shutil.rmtree(self.root, ignore_errors=True)


def _used(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _du(top: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--seconds", type=int, default=20, help="length of one pgbench run")
    args = ap.parse_args()
    if reason := pool_unavailable():
        sys.exit(f"storage pool bench not run: {reason}")
    root = Path(os.environ.get("ARGON_TEST_ROOT", "/tmp/argon-tests"))
    root.mkdir(parents=True, exist_ok=True)
    fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", str(root)],
                        capture_output=True, text=True).stdout.strip() or "unknown"
    copy, pool = Side("copy", "off"), Side("pool", "auto")
    load_before = os.getloadavg()[1]
    with ExitStack() as stack:
        for side in (copy, pool):
            stack.callback(side.close)
            side.start()
            print(f"[{side.name}] filling {args.mb} MB", flush=True)
            side.fill(args.mb)
        for i in range(args.runs):
            for side in (copy, pool) if i % 2 == 0 else (pool, copy):
                side.branch_once()
                print(f"[{side.name}] branch {side.branch_s[-1]:.2f} s, "
                      f"+{side.added[-1]:.2f} MiB", flush=True)
                side.branch_ready_once()
                print(f"[{side.name}] branch + endpoint -> SELECT 1 {side.ready_s[-1]:.2f} s",
                      flush=True)
        for side in (copy, pool):
            side.suspend()   # the computes wake for pgbench; no branch writes meanwhile
        # plain clusters: one in the pool's mount (a dot name, which storage leaves
        # alone), one next to the copy home on ext4
        plain_ext4 = PlainCluster("ext4", copy.env.home.parent / f"{copy.env.home.name}-plain",
                                  6431)
        plain_pool = PlainCluster("pool", pool.timelines / ".bench-plain", 6432)
        for plain in (plain_ext4, plain_pool):
            stack.callback(plain.close)
            plain.start()
        for i in range(args.runs):
            for side in (copy, pool) if i % 2 == 0 else (pool, copy):
                side.pgbench(args.seconds)
                print(f"[{side.name}] pgbench {side.tps[-1]:.0f} tps", flush=True)
            for plain in (plain_ext4, plain_pool) if i % 2 == 0 else (plain_pool, plain_ext4):
                plain.pgbench(args.seconds)
                print(f"[plain {plain.name}] pgbench {plain.tps[-1]:.0f} tps", flush=True)
    load = (f"Load average (5 min) {load_before:.1f} at the start, {os.getloadavg()[1]:.1f} "
            f"at the end, on {os.cpu_count()} cores shared with other work: single runs "
            "vary a lot, compare medians.")
    rows = [
        [f"copies on {fs}", f"{copy.data_mb:.0f} MB", f"{p50(copy.branch_s):.2f} s",
         f"{p95(copy.branch_s):.2f} s", f"{p50(copy.ready_s):.2f} s",
         f"{p50(copy.added):.0f} MiB", "-",
         f"{p50(copy.tps):.0f}", "1.00x"],
        ["storage pool (XFS image)", f"{pool.data_mb:.0f} MB", f"{p50(pool.branch_s):.2f} s",
         f"{p95(pool.branch_s):.2f} s", f"{p50(pool.ready_s):.2f} s",
         f"{p50(pool.added):.2f} MiB",
         f"{p50(pool.image_added):.2f} MiB", f"{p50(pool.tps):.0f}",
         f"{p50(pool.tps) / p50(copy.tps):.2f}x"],
    ]
    headers = ["timelines", "database", "branch p50", "branch p95",
               "branch + endpoint -> SELECT 1 p50", "disk added p50",
               f"image growth on {fs} p50", "pgbench tps p50 (Argon)", "tps vs ext4"]
    plain_rows = [[f"plain {fs}", f"{p50(plain_ext4.tps):.0f}", "1.00x"],
                  ["XFS image (the pool)", f"{p50(plain_pool.tps):.0f}",
                   f"{p50(plain_pool.tps) / p50(plain_ext4.tps):.2f}x"]]
    body = "\n".join([
        "## Storage pool: instant branches on an ext4 home (issue 11)", "",
        f"Two Argons in one run on the root filesystem ({fs}), one with `--storage-pool "
        f"off` (branches are full copies), one with the pool (timelines in a sparse XFS "
        f"`reflink=1` image in the home, loop device with direct I/O, mounted `discard`). "
        f"A {args.mb} MB table in each default branch; {args.runs} branches each "
        "(alternating, parent idle, `POST /branches` until its operations finish, each "
        "branch deleted after; then the same with an endpoint, until the returned "
        "connection string answers `SELECT 1` through the proxy); disk added = the new timeline's blocks for copies, the "
        "drop of the pool's free blocks (`statvfs`, shared extents once) for the pool, "
        "and next to it what the image file grew on the host. Write TPS: pgbench "
        f"tpcb-like, scale 10, 2 clients, {args.seconds} s runs, {args.runs} runs each "
        "alternating, through the proxy; the default `synchronous_commit` (every commit "
        "fsyncs, through XFS, the loop device and ext4 for the pool).", "",
        table(headers, rows), "",
        "The same pgbench on a plain cluster run by hand on each filesystem (unix socket, "
        "no proxy), alternating with the runs above:", "",
        table(["filesystem", "pgbench tps p50", "tps vs ext4"], plain_rows), "",
        "Branch runs: copies " + ", ".join(f"{x:.2f}" for x in copy.branch_s) +
        " s; pool " + ", ".join(f"{x:.2f}" for x in pool.branch_s) + " s. TPS runs: "
        "ext4 " + ", ".join(f"{x:.0f}" for x in copy.tps) + "; pool " +
        ", ".join(f"{x:.0f}" for x in pool.tps) + "; plain ext4 " +
        ", ".join(f"{x:.0f}" for x in plain_ext4.tps) + "; plain pool " +
        ", ".join(f"{x:.0f}" for x in plain_pool.tps) + ".", "", load])
    print(body)
    write_section("storage-pool", "python bench/storage_pool.py " + " ".join(sys.argv[1:]),
                  body)


if __name__ == "__main__":
    main()
