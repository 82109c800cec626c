"""API latency benchmark: create-branch, list-branches with 1,000 branches, responsiveness.

Starts a real Argon (``argon start``) on a temporary home and measures, over HTTP:
- create-branch: request until its operations finished (p50, p95), sequential;
- list-branches with N branches in the project (p50, p95; target p50 < 50 ms);
- health (``GET /healthz`` and ``GET /api/v2/regions``) p99 while ten branch creations
  run at once (target p99 < 50 ms);
- resident memory of the Argon process with N branches.

The N listed branches are metadata rows written straight into the metadata store:
listing reads only metadata, and N real data directories would need N copies of a
cluster on a filesystem without reflinks.  The creations are real branches.

Usage: python bench/api_latency.py [--branches 1000] [--creates 10] [--out FILE]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from argon.meta import tables as t  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


class Argon:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.api_port = free_port()
        self.origin = f"http://127.0.0.1:{self.api_port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.key = ""

    def start(self) -> None:
        cmd = [sys.executable, "-m", "argon.cli.main", "start", "--home", str(self.home),
               "--api-port", str(self.api_port), "--pg-port", str(free_port()),
               "--http-port", str(free_port())]
        self.log = (self.home.parent / "argon.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 180
        key_file = self.home / "secrets" / "bootstrap_api_key"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"argon start exited {self.proc.returncode}")
            if key_file.exists():
                self.key = key_file.read_text().strip()
                try:
                    if self.client().get("/api/v2/projects").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        raise SystemExit("argon did not become ready")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.origin, timeout=300,
                            headers={"Authorization": f"Bearer {self.key}"})

    def rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_ops(c: httpx.Client, pid: str, ops: list[dict[str, Any]]) -> None:
    for op in ops:
        while True:
            st = c.get(f"/api/v2/projects/{pid}/operations/{op['id']}").json()["operation"]
            if st["status"] in ("finished", "skipped", "cancelled", "failed", "error"):
                break
            time.sleep(0.01)


def create_branch(c: httpx.Client, pid: str, name: str) -> float:
    t0 = time.perf_counter()
    while True:
        r = c.post(f"/api/v2/projects/{pid}/branches", json={"branch": {"name": name}})
        if r.status_code != 423:
            break
        time.sleep(0.05)
    r.raise_for_status()
    wait_ops(c, pid, r.json()["operations"])
    return (time.perf_counter() - t0) * 1000


def seed_branches(home: Path, pid: str, parent_id: str, n: int) -> None:
    engine = create_engine(f"sqlite:///{home / 'argon.db'}")
    now = datetime.now(UTC)
    rows = [dict(id=f"br-bench-{secrets.token_hex(6)}", project_id=pid,
                 timeline_id=f"bench-{secrets.token_hex(8)}", parent_id=parent_id,
                 parent_lsn="0/0", name=f"bench/{i:05d}", state="ready", is_default=False,
                 protected=False, init_source="parent-data", created_at=now, updated_at=now)
            for i in range(n)]
    with engine.begin() as conn:
        conn.execute(insert(t.branches), rows)
    engine.dispose()


def run(n_branches: int, n_creates: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="argon-bench-", dir="/tmp"))
    os.chmod(root, 0o755)
    argon = Argon(root / "home")
    res: dict[str, float] = {}
    try:
        argon.start()
        with argon.client() as c:
            proj = c.post("/api/v2/projects", json={"project": {"name": "bench"}}).json()
            pid, main = proj["project"]["id"], proj["branch"]["id"]
            wait_ops(c, pid, proj["operations"])

            lat = [create_branch(c, pid, f"seq-{i}") for i in range(n_creates)]
            res["create_branch_p50_ms"] = statistics.median(lat)
            res["create_branch_p95_ms"] = pct(lat, 95)

            seed_branches(argon.home, pid, main, n_branches)
            total = c.get(f"/api/v2/projects/{pid}/branches/count").json()["count"]
            res["branches_in_project"] = total
            c.get(f"/api/v2/projects/{pid}/branches", params={"limit": 10000})  # warm up
            lst = []
            for _ in range(30):
                t0 = time.perf_counter()
                r = c.get(f"/api/v2/projects/{pid}/branches", params={"limit": 10000})
                lst.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200 and len(r.json()["branches"]) == total
            res["list_branches_p50_ms"] = statistics.median(lst)
            res["list_branches_p95_ms"] = pct(lst, 95)
            res["rss_mib_with_branches"] = argon.rss_mib()

            # Health while ten creations run at once.
            health: list[float] = []
            done = threading.Event()

            def probe() -> None:
                with httpx.Client(base_url=argon.origin, timeout=30) as h:
                    while not done.is_set():
                        t0 = time.perf_counter()
                        h.get("/healthz")
                        health.append((time.perf_counter() - t0) * 1000)
                        time.sleep(0.01)

            prober = threading.Thread(target=probe)
            prober.start()
            with concurrent.futures.ThreadPoolExecutor(10) as pool:
                par = list(pool.map(lambda i: create_branch(argon.client(), pid, f"par-{i}"),
                                    range(10)))
            done.set()
            prober.join()
            res["parallel_create_p50_ms"] = statistics.median(par)
            res["health_p50_ms_during_creates"] = statistics.median(health)
            res["health_p99_ms_during_creates"] = pct(health, 99)
            res["rss_mib_after"] = argon.rss_mib()
    finally:
        argon.stop()
        shutil.rmtree(root, ignore_errors=True)
    return res


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.report import write_section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--branches", type=int, default=1000)
    ap.add_argument("--creates", type=int, default=10)
    ap.add_argument("--out", type=Path, help="append a markdown table to this file")
    args = ap.parse_args()
    res = run(args.branches, args.creates)
    targets = {"list_branches_p50_ms": 50.0, "health_p99_ms_during_creates": 50.0}
    lines = ["## API latency (bench/api_latency.py)", "",
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores", "",
             "| measure | value | target |", "| --- | ---: | ---: |"]
    for k, v in res.items():
        target = f"< {targets[k]:.0f}" if k in targets else ""
        lines.append(f"| {k} | {v:.1f} | {target} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section("api", "python bench/api_latency.py", text.replace(
        "## API latency (bench/api_latency.py)", "## API latency (issue 3)"))
    if args.out:
        with args.out.open("a") as f:
            f.write(text + "\n")
    missed = [k for k, lim in targets.items() if res[k] >= lim]
    if missed:
        print("targets missed: " + ", ".join(missed))


if __name__ == "__main__":
    main()
