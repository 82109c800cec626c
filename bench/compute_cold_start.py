"""Compute cold start and idle memory.

Cold start: a stopped endpoint -> ``ComputeManager.start`` -> connect over the unix
socket -> first row of ``SELECT 1``, repeated ``--runs`` times (p50/p95/max).
Idle memory: after the runs, the started endpoint sits idle for ``--settle`` seconds,
then PSS and RSS of the postmaster and all its children are summed from
``/proc/<pid>/smaps_rollup`` (PSS splits shared pages fairly between processes, so it
is the number to multiply by the count of endpoints; RSS double-counts shared memory).

    .venv/bin/python bench/compute_cold_start.py [--pg-version 18] [--runs 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from argon.compute import ComputeManager, ComputeSpec, HostLayout, initdb
from argon.compute.pidfile import process_tree
from argon.pg import choose_install, pg_os_user


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def smaps_kib(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in KiB of one process."""
    pss = rss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


class _OneDir:
    def __init__(self, pgdata: Path) -> None:
        self.path = pgdata

    def pgdata(self, timeline_id: str, copy: str | None = None) -> Path:
        return self.path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg-version", type=int, default=None)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--settle", type=float, default=2.0, help="idle seconds before measuring")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    owner = pg_os_user()
    root = Path(tempfile.mkdtemp(prefix="argon-bench-compute-"))
    os.chmod(root, 0o755)
    # the bench's own locator: the timeline "bench" is root/pgdata
    mgr = ComputeManager(owner, HostLayout(_OneDir(root / "pgdata"), root))
    install = choose_install(args.pg_version).accessible_for(owner.uid, root / "pgbin")
    spec = ComputeSpec("ep-bench", "bench", install, free_port(),
                       admin_password="bench-admin-password")
    where = mgr.layout.place(spec)
    try:
        initdb(install, where.pgdata, owner, spec.admin_password)
        mgr.start(spec)   # the first start moves initdb's config aside: not measured
        mgr.stop(spec)
        times: list[float] = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            mgr.start(spec)
            with mgr.connect(spec) as conn:
                conn.execute("SELECT 1").fetchone()
            times.append((time.perf_counter() - t0) * 1000)
            mgr.stop(spec, "fast")
        mgr.start(spec)
        time.sleep(args.settle)
        pid = mgr.pid(spec)
        if pid is None:
            raise SystemExit("the compute died while idle; see " + str(where.log_path))
        procs = process_tree(pid)
        pss = sum(smaps_kib(p)[0] for p in procs) / 1024
        rss = sum(smaps_kib(p)[1] for p in procs) / 1024
    finally:
        mgr.stop(spec, "immediate")
        shutil.rmtree(root, ignore_errors=True)
    p50, p95 = statistics.median(times), percentile(times, 95)
    if args.json:
        print(json.dumps({
            "pg_version": install.full_version, "runs": args.runs,
            "cold_start_ms": {"p50": round(p50, 1), "p95": round(p95, 1),
                              "max": round(max(times), 1)},
            "idle_memory_mib": {"processes": len(procs), "pss": round(pss, 1),
                                "rss": round(rss, 1)},
        }))
        return
    print(f"PostgreSQL {install.full_version}: cold start to the first row of SELECT 1, "
          f"{args.runs} runs: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(times):.1f} ms")
    print(f"idle endpoint ({len(procs)} processes): PSS {pss:.1f} MiB, RSS {rss:.1f} MiB")


if __name__ == "__main__":
    main()
