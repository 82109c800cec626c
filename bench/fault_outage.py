"""Longest write outage after a kill -9 of a compute, direct and pooled.

A real Argon (``argon start`` on a temporary home), one project, two writers inserting
one row per commit through the proxy: one on the direct host, one on the ``-pooler``
host (PgBouncer, transaction mode).  Each fault SIGKILLs the compute's postmaster; the
outage a writer saw is the longest gap between two of its acknowledged writes across
the fault (so it includes reconnecting).  Prints p50/max per writer over ``--faults``
faults and rewrites the ``fault-outage`` section of docs/benchmarks.md.

    .venv/bin/python bench/fault_outage.py [--faults 20] [--settle 1.0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import p50, table, write_section  # noqa: E402
from tests.fixtures.argon_env import kill_leftover_postgres, make_env  # noqa: E402
from tests.fixtures.faults import start_write_load  # noqa: E402

TARGET_SECONDS = 5.0


def run(faults: int, settle: float) -> dict[str, list[float]]:
    env = make_env("bench-fault-outage")
    env.start()
    load = None
    try:
        load = start_write_load(env, "fault-outage")
        outages: dict[str, list[float]] = {w.name: [] for w in load.writers}
        for fault in range(faults):
            killed_at = load.fault(timeout=120)
            time.sleep(settle)
            for w in load.writers:
                outages[w.name].append(w.longest_gap(killed_at, time.monotonic()))
            print(f"fault {fault + 1:2d}: " + ", ".join(
                f"{name} {xs[-1]:.2f} s" for name, xs in outages.items()), flush=True)
        load.stop()
        stored = load.stored_ids()
        for w in load.writers:
            lost = set(w.acked) - stored
            if lost:
                raise SystemExit(f"{w.name}: {len(lost)} acknowledged rows lost")
        outages["failed queries per fault"] = [w.failures / faults for w in load.writers]
        return outages
    finally:
        if load is not None:
            load.stop()
        env.stop()
        kill_leftover_postgres(env.home)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faults", type=int, default=20)
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds of steady writing after each recovery")
    ap.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    args = ap.parse_args()
    outages = run(args.faults, args.settle)
    failed = outages.pop("failed queries per fault")
    rows = []
    for (name, xs), per_fault in zip(outages.items(), failed):
        worst = max(xs)
        rows.append([name, f"{p50(xs):.2f}", f"{worst:.2f}", f"{per_fault:.1f}",
                     "yes" if worst < TARGET_SECONDS else "no"])
    text = "\n".join([
        "## Write outage after kill -9 of a compute",
        "",
        f"{args.faults} faults: SIGKILL of the compute's postmaster while one writer per "
        "host inserts a row per commit through the proxy (direct host, and `-pooler` "
        "host through PgBouncer in transaction mode). Outage = longest gap between two "
        "acknowledged writes across the fault, reconnecting included. No acknowledged "
        "row was lost. The compute comes back on the same port (started by the proxy's "
        "wake or by the reconciler within a second); PgBouncer retries its server login "
        "every second (`server_login_retry = 1`). Before issue 8, PgBouncer kept the old "
        "port until a new pooled connection reloaded it: an open pooled session's next "
        "query waited 120 s and failed (93.7 s pooled outage in that fault run).",
        "",
        table(["writer", "p50 outage (s)", "max outage (s)", "failed queries per fault",
               f"max under {TARGET_SECONDS:.0f} s"], rows),
    ])
    print(text)
    if not args.no_write:
        write_section("fault-outage", "python bench/fault_outage.py " + " ".join(sys.argv[1:]),
                      text)


if __name__ == "__main__":
    main()
