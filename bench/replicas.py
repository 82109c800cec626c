"""Read replicas: create -> first query, lag under write load, idle memory, wake.

A real Argon (``argon start`` on a temporary home), one project whose main branch holds
``pgbench -i -s <scale>`` (Postgres' own pgbench, through the proxy).  Measured:

- create -> first query: ``POST /endpoints {type: read_only}`` until a new connection
  through the proxy has answered ``SELECT count(*) FROM pgbench_accounts`` (the
  replica is seeded, started and caught up), then the replica is deleted; per clone
  driver (copy on this home; reflink on a loop-mounted XFS when root and xfsprogs are
  there);
- lag under a steady pgbench write load on the primary (``-R`` transactions/s): the
  time from a marker row's commit on the primary to its visibility on the replica, and
  the ``replication_lag_seconds`` the API reports, sampled;
- memory of an idle replica: PSS (and RSS) of its whole process tree;
- wake of a suspended replica: connect + ``SELECT 1`` through the proxy, with the
  primary running and with the primary suspended too.

    .venv/bin/python bench/replicas.py [--runs 7] [--scale 5] [--rate 150] [--no-reflink]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from argon.compute.pidfile import process_tree  # noqa: E402
from argon.pg import choose_install  # noqa: E402
from bench.report import p50, p95, table, write_section  # noqa: E402
from tests.fixtures.argon_env import (ArgonEnv, kill_leftover_postgres, make_env,  # noqa: E402
                                      wait_operations)
from tests.fixtures.xfs import XfsUnavailable, xfs_mount  # noqa: E402


class Bench:
    def __init__(self, env: ArgonEnv, scale: int) -> None:
        self.env = env
        r = env.api("POST", "/projects", json={"project": {"name": "bench-replicas"}})
        assert r.status_code == 201, r.text
        body = r.json()
        self.pid = body["project"]["id"]
        wait_operations(env.api, self.pid, body["operations"])
        self.main = body["branch"]["id"]
        self.primary = body["endpoints"][0]["id"]
        self.role, self.db = body["roles"][0]["name"], body["databases"][0]["name"]
        self.pgbench = choose_install().bin("pgbench")
        subprocess.run([self.pgbench, "-i", "-s", str(scale), "-q", self.plain(self.uri())],
                       check=True, capture_output=True)
        with psycopg.connect(self.uri(), autocommit=True) as c:
            c.execute("CREATE TABLE marks (id int PRIMARY KEY)")

    def api(self, method: str, path: str, **kw: Any) -> Any:
        return self.env.api(method, f"/projects/{self.pid}{path}", **kw)

    def uri(self, endpoint_id: str | None = None) -> str:
        params: dict[str, Any] = {"database_name": self.db, "role_name": self.role}
        if endpoint_id:
            params["endpoint_id"] = endpoint_id
        return self.api("GET", "/connection_uri", params=params).json()["uri"]  # type: ignore[no-any-return]

    @staticmethod
    def plain(uri: str) -> str:
        return uri.partition("?")[0] + "?sslmode=disable"   # the embedded libpq has no TLS

    def act(self, endpoint_id: str, what: str) -> None:
        r = self.api("POST", f"/endpoints/{endpoint_id}/{what}")
        assert r.status_code == 200, r.text
        wait_operations(self.env.api, self.pid, r.json()["operations"])

    def create_replica(self) -> tuple[float, str]:
        t0 = time.perf_counter()
        r = self.api("POST", "/endpoints", json={"endpoint": {"branch_id": self.main,
                                                              "type": "read_only"}})
        assert r.status_code == 201, r.text
        ep = r.json()["endpoint"]["id"]
        with psycopg.connect(self.uri(ep), connect_timeout=120) as c:
            c.execute("SELECT count(*) FROM pgbench_accounts").fetchone()
        return time.perf_counter() - t0, ep

    def delete(self, endpoint_id: str) -> None:
        assert self.api("DELETE", f"/endpoints/{endpoint_id}").status_code == 200

    def lag_under_load(self, replica: str, rate: int, marks: int) -> dict[str, list[float]]:
        load = subprocess.Popen([self.pgbench, "-n", "-c", "2", "-j", "1", "-T", "3600",
                                 "-R", str(rate), self.plain(self.uri())],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        visible: list[float] = []
        reported: list[float] = []
        stop = threading.Event()

        def sample() -> None:   # the API's figure, sampled on its own clock (1 s cache)
            while not stop.wait(0.25):
                lag = self.api("GET", f"/endpoints/{replica}").json()["endpoint"]
                if lag.get("replication_lag_seconds") is not None:
                    reported.append(float(lag["replication_lag_seconds"]))
        sampler = threading.Thread(target=sample, daemon=True)
        try:
            time.sleep(3)
            sampler.start()
            with psycopg.connect(self.uri(), autocommit=True) as w, \
                    psycopg.connect(self.uri(replica), autocommit=True) as r:
                base = int(w.execute("SELECT coalesce(max(id), 0) FROM marks").fetchone()[0])
                for i in range(base + 1, base + marks + 1):
                    w.execute("INSERT INTO marks VALUES (%s)", (i,))
                    t0 = time.perf_counter()
                    while not r.execute("SELECT 1 FROM marks WHERE id = %s", (i,)).fetchone():
                        time.sleep(0.001)
                    visible.append(time.perf_counter() - t0)
                    time.sleep(0.2)
            if load.poll() is not None:
                raise SystemExit("pgbench stopped during the lag run")
        finally:
            stop.set()
            if sampler.is_alive():
                sampler.join(10)
            load.terminate()
            load.wait(30)
        return {"visible": visible, "reported": reported}

    def replica_pid(self, replica: str) -> int:
        with psycopg.connect(self.uri(replica)) as c:
            ckpt = c.execute("SELECT pid FROM pg_stat_activity "
                             "WHERE backend_type = 'checkpointer'").fetchone()[0]
        return int(Path(f"/proc/{ckpt}/stat").read_text().split(")")[1].split()[1])

    def wake(self, replica: str, runs: int, primary_running: bool) -> list[float]:
        out = []
        for _ in range(runs):
            self.act(replica, "suspend")
            if primary_running:
                self.act(self.primary, "start")
            else:
                self.act(self.primary, "suspend")
            t0 = time.perf_counter()
            with psycopg.connect(self.uri(replica), connect_timeout=120) as c:
                c.execute("SELECT 1").fetchone()
            out.append(time.perf_counter() - t0)
        return out


def memory_kib(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of the process tree in KiB."""
    pss = rss = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
        except OSError:
            continue
    return pss, rss


def run_driver(driver: str, home_parent: Path | None, args: argparse.Namespace,
               full: bool) -> dict[str, Any]:
    env = make_env(f"bench-rr-{driver}", ["--clone-driver", driver])
    if home_parent is not None:
        env.home = home_parent / env.home.name
    env.start(timeout=300)
    try:
        b = Bench(env, args.scale)
        res: dict[str, Any] = {"create": []}
        for i in range(args.runs):
            t, ep = b.create_replica()
            res["create"].append(t)
            print(f"[{driver}] create -> first query {i + 1}: {t:.3f} s", flush=True)
            if i < args.runs - 1 or not full:
                b.delete(ep)
        if not full:
            return res
        replica = ep
        res.update(b.lag_under_load(replica, args.rate, args.marks))
        print(f"[{driver}] visible p50 {p50(res['visible']):.3f} s", flush=True)
        b.act(replica, "restart")
        pid = b.replica_pid(replica)
        time.sleep(5)
        res["memory"] = memory_kib(pid)
        res["wake_primary_running"] = b.wake(replica, args.runs, True)
        res["wake_primary_suspended"] = b.wake(replica, args.runs, False)
        return res
    finally:
        env.stop()
        kill_leftover_postgres(env.home)
        shutil.rmtree(env.home, ignore_errors=True)   # a GB-scale home per run otherwise
        env.log_path.unlink(missing_ok=True)


def ms(xs: list[float]) -> tuple[str, str]:
    def one(x: float) -> str:
        return f"{x * 1000:.1f} ms" if x < 0.1 else f"{x * 1000:.0f} ms"
    return one(p50(xs)), one(p95(xs))


def write(results: dict[str, dict[str, Any]], args: argparse.Namespace, note: str) -> None:
    copy = results["copy"]
    rows = [[f"create -> first query ({d})", *ms(r["create"]), str(len(r["create"]))]
            for d, r in results.items()]
    rows += [
        ["commit on primary -> visible on replica, under load", *ms(copy["visible"]),
         str(len(copy["visible"]))],
        ["`replication_lag_seconds` reported by the API (sampled every 0.25 s)",
         *(ms(copy["reported"]) if copy["reported"] else ("-", "-")), str(len(copy["reported"]))],
        ["wake of a suspended replica, primary running", *ms(copy["wake_primary_running"]),
         str(len(copy["wake_primary_running"]))],
        ["wake of a suspended replica, primary suspended",
         *ms(copy["wake_primary_suspended"]), str(len(copy["wake_primary_suspended"]))],
    ]
    pss, rss = copy["memory"]
    body = "\n".join([
        "## Read replicas (issue 10)", "",
        f"One project, main holding `pgbench -i -s {args.scale}`; replicas on main. Lag: "
        f"`pgbench -c 2 -R {args.rate}` (tpcb-like) on the primary through the proxy, "
        f"{args.marks} marker rows committed on the primary and polled on the replica "
        "(every 1 ms) over a second connection. Wake: suspend the replica, then connect + "
        "`SELECT 1` through the proxy.", "",
        table(["what", "p50", "p95", "runs"], rows), "",
        f"Idle replica memory (whole process tree, 0.25 CU, 5 s after start): PSS "
        f"{pss / 1024:.1f} MiB, RSS {rss / 1024:.1f} MiB (RSS counts shared buffers "
        "once per process).", note,
    ])
    write_section("replicas", "python bench/replicas.py " + " ".join(sys.argv[1:]), body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--scale", type=int, default=5)
    ap.add_argument("--rate", type=int, default=150)
    ap.add_argument("--marks", type=int, default=40)
    ap.add_argument("--no-reflink", action="store_true")
    args = ap.parse_args()
    results: dict[str, dict[str, Any]] = {"copy": run_driver("copy", None, args, full=True)}
    note = ""
    if not args.no_reflink:
        root = Path(os.environ.get("ARGON_TEST_ROOT", "/tmp/argon-tests"))
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)
        try:
            with xfs_mount(root, size_bytes=(args.scale * 80 + 2048) * 2**20) as mnt:
                results["reflink"] = run_driver("reflink", mnt, args, full=False)
        except XfsUnavailable as exc:
            note = f"\nreflink driver not measured: {exc}.\n"
    else:
        note = "\nreflink driver not measured (--no-reflink).\n"
    write(results, args, note)


if __name__ == "__main__":
    main()
