"""Issue 2 figures: branch-ready time, cold start, storage per branch, memory per endpoint.

Runs a real Argon (``argon start`` in a subprocess) per clone driver: ``copy`` with its
home on the root filesystem, and ``reflink`` with its home on a loop-mounted XFS image
(root, a loop device and xfsprogs needed; skipped with the reason otherwise).  Every
figure goes through the user's path: the API to create a branch with an endpoint, then
the printed connection string through the proxy until ``SELECT 1`` answers.

    .venv/bin/python bench/core_bench.py [--runs 7] [--big-mb 1024] [--no-reflink]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from argon.compute.pidfile import process_tree  # noqa: E402
from argon.pg import choose_install  # noqa: E402
from bench.report import p50, p95, table, write_section  # noqa: E402
from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres, make_env  # noqa: E402
from tests.fixtures.xfs import XfsUnavailable, xfs_mount  # noqa: E402

ROW_BYTES = 1_000  # one generated row is about 1 kB on disk


def used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def postmaster_pid(uri: str) -> int:
    """The compute's postmaster: the parent process of its checkpointer."""
    with psycopg.connect(uri) as conn:
        ckpt = conn.execute("SELECT pid FROM pg_stat_activity "
                            "WHERE backend_type = 'checkpointer'").fetchone()[0]
    return int(Path(f"/proc/{ckpt}/stat").read_text().split(")")[1].split()[1])


def pss_kib(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class Bench:
    def __init__(self, env: ArgonEnv) -> None:
        self.env = env
        created = env.api("POST", "/projects", json={"project": {
            "name": "bench", "default_endpoint_settings": {"suspend_timeout_seconds": -1}}}).json()
        self.pid = created["project"]["id"]
        self.main = created["branch"]["id"]
        self.main_ep = created["endpoints"][0]["id"]
        self.uri = created["connection_uris"][0]["connection_uri"]
        # the embedded pgbench has no TLS; the proxy takes plaintext from loopback
        self.plain_uri = self.uri.partition("?")[0] + "?sslmode=disable"
        self.n = 0

    def fill(self, megabytes: int) -> None:
        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS filler")
            conn.execute("CREATE TABLE filler (id bigint, pad text)")
            rows, step = megabytes * 1_000_000 // ROW_BYTES, 200_000
            for start in range(0, rows, step):
                conn.execute("INSERT INTO filler SELECT g, repeat(md5(g::text), 28) "
                             "FROM generate_series(%s::bigint, %s::bigint) g",
                             (start, min(rows, start + step) - 1))
            conn.execute("CHECKPOINT")
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        print(f"  database size {size / 2**20:.0f} MiB", flush=True)

    def branch_ready(self) -> tuple[float, str]:
        self.n += 1
        t0 = time.perf_counter()
        r = self.env.api("POST", f"/projects/{self.pid}/branches", json={
            "branch": {"name": f"b{self.n}"}, "endpoints": [{"type": "read_write"}]})
        assert r.status_code == 201, r.text
        body = r.json()
        uri = body["connection_uris"][0]["connection_uri"]
        with psycopg.connect(uri, connect_timeout=60) as conn:
            conn.execute("SELECT 1").fetchone()
        return time.perf_counter() - t0, body["branch"]["id"]

    def delete(self, branch_id: str) -> None:
        r = self.env.api("DELETE", f"/projects/{self.pid}/branches/{branch_id}")
        assert r.status_code == 200, r.text

    def added_storage(self) -> tuple[int, int]:
        """Disk added by a branch alone, and by the branch once its compute has started."""
        timelines = self.env.home / "timelines"
        # a quiet filesystem: the parent is stopped, so its own writes do not count
        self.env.api("POST", f"/projects/{self.pid}/endpoints/{self.main_ep}/suspend")
        os.sync()
        time.sleep(1)
        before = used_bytes(timelines)
        r = self.env.api("POST", f"/projects/{self.pid}/branches",
                         json={"branch": {"name": f"s{self.n}"}})
        self.n += 1
        bid = r.json()["branch"]["id"]
        os.sync()
        alone = used_bytes(timelines) - before
        ep = self.env.api("POST", f"/projects/{self.pid}/endpoints", json={
            "endpoint": {"branch_id": bid, "type": "read_write"}}).json()["endpoint"]["id"]
        self.env.api("POST", f"/projects/{self.pid}/endpoints/{ep}/start")
        os.sync()
        started = used_bytes(timelines) - before
        self.delete(bid)
        return alone, started

    def cold_start(self, runs: int) -> list[float]:
        out = []
        for _ in range(runs):
            r = self.env.api("POST", f"/projects/{self.pid}/endpoints/{self.main_ep}/suspend")
            assert r.status_code == 200, r.text
            t0 = time.perf_counter()
            with psycopg.connect(self.uri, connect_timeout=60) as conn:
                conn.execute("SELECT 1").fetchone()
            out.append(time.perf_counter() - t0)
        return out


class WriteLoad:
    """pgbench tpcb-like on the parent for as long as the block runs."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.pgbench = choose_install().bin("pgbench")
        subprocess.run([self.pgbench, "-i", "-s", "2", "-q", uri], check=True,
                       capture_output=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WriteLoad:
        self.proc = subprocess.Popen([self.pgbench, "-c", "2", "-T", "3600", "-n", self.uri],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(30)


def run_driver(driver: str, home_parent: Path, args: argparse.Namespace) -> dict[str, object]:
    env = make_env(f"bench-{driver}", ["--clone-driver", driver])
    env.home = home_parent / env.home.name
    env.start(timeout=300)
    try:
        b = Bench(env)
        res: dict[str, object] = {}
        for label, mb in (("10 MB", 10), (f"{args.big_mb} MB", args.big_mb)):
            print(f"[{driver}] filling {label}", flush=True)
            b.fill(mb)
            runs = args.runs if mb <= 100 or driver == "reflink" else max(3, args.runs // 2)
            for load in (False, True):
                times = []
                with ExitStack() as stack:
                    if load:
                        stack.enter_context(WriteLoad(b.plain_uri))
                    for _ in range(runs):
                        t, bid = b.branch_ready()
                        times.append(t)
                        b.delete(bid)
                key = f"{label}, parent {'under write load' if load else 'idle'}"
                res[key] = times
                print(f"  {key}: p50 {p50(times):.3f}s p95 {p95(times):.3f}s", flush=True)
        res["storage"] = b.added_storage()
        res["cold"] = b.cold_start(args.cold_runs)
        res["memory"] = memory(env, b)
        return res
    finally:
        env.stop()
        kill_leftover_postgres(env.home)


def memory(env: ArgonEnv, b: Bench) -> dict[str, int]:
    """PSS of a compute idle (running, no queries) and active (pgbench select-only)."""
    r = env.api("POST", f"/projects/{b.pid}/endpoints/{b.main_ep}/start")
    assert r.status_code == 200, r.text
    pid = postmaster_pid(b.uri)
    time.sleep(3)
    idle = pss_kib(pid)
    pgbench = choose_install().bin("pgbench")
    load = subprocess.Popen([pgbench, "-S", "-c", "4", "-T", "8", "-n", b.plain_uri],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    for _ in range(6):
        time.sleep(1)
        samples.append(pss_kib(pid))
    load.wait(60)
    return {"idle_kib": idle, "active_kib": max(samples)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--cold-runs", type=int, default=20)
    ap.add_argument("--big-mb", type=int, default=1024)
    ap.add_argument("--no-reflink", action="store_true")
    args = ap.parse_args()
    results: dict[str, dict[str, object]] = {}
    root = Path(os.environ.get("ARGON_TEST_ROOT", "/tmp/argon-tests"))
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    results["copy"] = run_driver("copy", root, args)
    reflink_note = ""
    if not args.no_reflink:
        try:
            with xfs_mount(root, size_bytes=(args.big_mb * 6 + 2048) * 2**20) as mnt:
                results["reflink"] = run_driver("reflink", mnt, args)
        except XfsUnavailable as exc:
            reflink_note = f"\nreflink driver not measured: {exc}.\n"
    write(results, args, reflink_note)


def write(results: dict[str, dict[str, object]], args: argparse.Namespace, note: str) -> None:
    rows = []
    for driver, res in results.items():
        for key, times in res.items():
            if key in ("storage", "cold", "memory"):
                continue
            assert isinstance(times, list)
            rows.append([driver, key, f"{p50(times) * 1000:.0f} ms", f"{p95(times) * 1000:.0f} ms",
                         str(len(times))])
    body = ["## Core: branches, cold start, storage, memory (issue 2)", "",
            "Branch ready = `POST /branches` with an endpoint -> connect with the returned "
            "connection string through the proxy -> `SELECT 1` answers. The branch is deleted "
            "after each run. Write load = pgbench tpcb-like, 2 clients, on the parent.", "",
            table(["driver", "database, parent", "p50", "p95", "runs"], rows), ""]
    srows, crows, mrows = [], [], []
    for driver, res in results.items():
        alone, started = res["storage"]  # type: ignore[misc]
        srows.append([driver, f"{alone / 2**20:.2f} MiB", f"{started / 2**20:.2f} MiB"])
        cold = res["cold"]
        assert isinstance(cold, list)
        crows.append([driver, f"{p50(cold) * 1000:.0f} ms", f"{p95(cold) * 1000:.0f} ms",
                      str(len(cold))])
        mem = res["memory"]
        assert isinstance(mem, dict)
        mrows.append([driver, "0 (no process)", f"{mem['idle_kib'] / 1024:.1f} MiB",
                      f"{mem['active_kib'] / 1024:.1f} MiB"])
    body += ["Disk added by one new branch (statvfs of the timelines filesystem, after "
             f"`sync`, parent suspended), with a {args.big_mb} MB parent. Starting the "
             "compute adds its new timeline's first WAL segment (1 MiB) and what the "
             "end-of-recovery checkpoint writes:", "",
             table(["driver", "branch alone", "branch + its compute started"], srows), "",
             "Cold start = suspended endpoint -> connect through the proxy (wake on connect) "
             "-> first row of `SELECT 1`:", "",
             table(["driver", "p50", "p95", "runs"], crows), "",
             "Memory per endpoint (PSS of the postmaster and all its children; PSS shares "
             "shared memory fairly): suspended, running idle, and under pgbench -S with 4 "
             "clients (peak of 6 samples):", "",
             table(["driver", "suspended", "running, idle", "active"], mrows), note]
    text = "\n".join(body)
    print(text)
    write_section("core", "python bench/core_bench.py " + " ".join(sys.argv[1:]), text)


if __name__ == "__main__":
    main()
