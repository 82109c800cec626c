"""Issue 15 figures: each user-visible step next to its physical floor, in one run.

Per clone driver (``copy`` with its home on the root filesystem, ``reflink`` on a
loop-mounted XFS image), a real Argon and, on the same filesystem, a plain Postgres
cluster of the same size measured by hand:

- project create (``POST /projects`` -> the returned connection string answers
  ``SELECT 1``) against ``initdb`` with Argon's options;
- branch with an endpoint (``POST /branches`` -> ``SELECT 1`` through the proxy) against
  a raw ``cp -a --reflink=auto`` of the data directory plus a cold start, and against
  PostgreSQL's own ``CREATE DATABASE ... STRATEGY FILE_COPY`` (``file_copy_method=clone``
  on reflink storage, 18+), parent idle and under pgbench;
- wake (suspended endpoint -> first row through the proxy, direct and pooled) against a
  cold start of a stopped cluster (``postgres`` spawned -> ``SELECT 1`` on its socket),
  and against that cold start plus what a TLS + SCRAM login costs beyond its trusted
  socket login (measured on a running plain Postgres with TLS, the login every wake's
  client makes): the proxy may start a compute only after the client has proved its
  password (issue 8), so that login cannot overlap the start.

    .venv/bin/python bench/fast_paths.py [--runs 5] [--mb 1024] [--no-copy] [--no-reflink]
                                         [--only wake] [--create-gap 2]

``--only wake`` measures only the wakes and their floor (printed, docs not rewritten).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from argon.pg import choose_install, pg_os_user  # noqa: E402
from bench.connect_rate import DB, PASSWORD, USER, tls_postgres  # noqa: E402
from bench.core_bench import ROW_BYTES, Bench, WriteLoad  # noqa: E402
from bench.report import p50, p95, table, write_section  # noqa: E402
from tests.fixtures.argon_env import kill_leftover_postgres, make_env  # noqa: E402
from tests.fixtures.xfs import XfsUnavailable, xfs_mount  # noqa: E402

INITDB_ARGS = ["-U", "cloud_admin", "-E", "UTF8", "--locale=C.UTF-8", "--auth-local=trust",
               "--no-instructions", "--wal-segsize=1"]


def quiet_disk() -> None:
    """Write back what earlier steps left dirty before a sample: a step that syncs (a
    project's or a branch's syncfs, initdb's fsyncs) must not pay for the writeback of
    the one before it (5 raw 1 GB clones leave gigabytes in the page cache)."""
    os.sync()


def timed(fn: Callable[[], object]) -> float:
    quiet_disk()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class Floor:
    """A plain cluster on the driver's filesystem, run by hand as the Postgres account."""

    def __init__(self, root: Path, driver: str) -> None:
        self.install = choose_install()
        self.owner = pg_os_user()
        self.root = root / f"floor-{driver}"
        self.root.mkdir(mode=0o755)
        self.owner.chown(self.root)
        self.pgdata = self.root / "pgdata"
        self.sock = self.root / "sock"
        self.driver = driver
        self.proc: subprocess.Popen[bytes] | None = None

    def run(self, *cmd: str) -> None:
        subprocess.run(list(cmd), check=True, capture_output=True, **self.owner.popen_kwargs())

    def initdb(self, pgdata: Path) -> None:
        self.run(self.install.bin("initdb"), "-D", str(pgdata), *INITDB_ARGS)

    def start(self, pgdata: Path | None = None) -> float:
        pgdata = pgdata or self.pgdata
        self.sock.mkdir(exist_ok=True)
        self.owner.chown(self.sock)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [self.install.bin("postgres"), "-D", str(pgdata), "-k", str(self.sock),
             "-c", "listen_addresses=", "-c", "port=5999",
             *(["-c", "file_copy_method=clone"]
               if self.driver == "reflink" and self.install.version >= 18 else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            **self.owner.popen_kwargs())  # type: ignore[arg-type]
        while True:
            try:
                with self.connect() as conn:
                    conn.execute("SELECT 1").fetchone()
                return time.perf_counter() - t0
            except psycopg.OperationalError:
                time.sleep(0.002)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(2)   # fast shutdown
            self.proc.wait(60)
            self.proc = None

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(host=str(self.sock), port=5999, user="cloud_admin",
                               dbname=dbname, autocommit=True)

    def fill(self, megabytes: int) -> None:
        with self.connect() as conn:
            conn.execute("CREATE DATABASE big")
        with self.connect("big") as conn:
            conn.execute("CREATE TABLE filler (id bigint, pad text)")
            rows, step = megabytes * 1_000_000 // ROW_BYTES, 200_000
            for start in range(0, rows, step):
                conn.execute("INSERT INTO filler SELECT g, repeat(md5(g::text), 28) "
                             "FROM generate_series(%s::bigint, %s::bigint) g",
                             (start, min(rows, start + step) - 1))
            conn.execute("CHECKPOINT")

    def raw_clone(self) -> float:
        dst = self.root / "clone"
        t = timed(lambda: self.run("cp", "-a", "--reflink=auto", str(self.pgdata), str(dst)))
        shutil.rmtree(dst)
        return t

    def pg_clone(self, n: int) -> float:
        with self.connect() as conn:
            t = timed(lambda: conn.execute(f"CREATE DATABASE c{n} TEMPLATE big "
                                           "STRATEGY FILE_COPY"))
            conn.execute(f"DROP DATABASE c{n}")
        return t

    def uri(self) -> str:
        return f"host={self.sock} port=5999 user=cloud_admin dbname=postgres"


@contextmanager
def pgbench_on(floor: Floor) -> Iterator[None]:
    pgbench = floor.install.bin("pgbench")
    subprocess.run([pgbench, "-i", "-s", "2", "-q", floor.uri()], check=True,
                   capture_output=True)
    proc = subprocess.Popen([pgbench, "-c", "2", "-T", "3600", "-n", floor.uri()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(30)


def secure_login_costs(root: Path, runs: int) -> list[float]:
    """What a TLS + SCRAM login (over TCP, channel binding, as a wake's client makes)
    costs beyond the trusted socket login the cold start floor makes, on a running plain
    Postgres: pairs of connect + ``SELECT 1``, one of each, interleaved (3 per run).
    [] when no Postgres with TLS is installed."""
    (root / "login-floor").mkdir(mode=0o755)
    try:
        server, _tls = tls_postgres(root / "login-floor")
    except Exception as exc:  # noqa: BLE001 - the floor is left out, and said so
        print(f"TLS login floor not measured: {exc}", flush=True)
        return []
    secure = (f"host=127.0.0.1 port={server.port} user={USER} password={PASSWORD} "
              f"dbname={DB} sslmode=require channel_binding=require")
    trusted = server.conninfo(USER, DB)

    def login(dsn: str) -> float:
        t0 = time.perf_counter()
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT 1").fetchone()
        return time.perf_counter() - t0
    try:
        return [login(secure) - login(trusted) for _ in range(3 * runs)]
    finally:
        server.stop()


def with_login(f: dict[str, list[float]], root: Path, runs: int) -> None:
    costs = secure_login_costs(root, runs)
    if costs:
        f["TLS + SCRAM login over a trusted one"] = costs
        f["cold start + TLS + SCRAM"] = [a + p50(costs) for a in f["cold start"]]
        if f.get("raw clone + cold start"):
            f["raw clone + cold start + TLS + SCRAM"] = [
                a + p50(costs) for a in f["raw clone + cold start"]]


def measure_floor(root: Path, driver: str, args: argparse.Namespace) -> dict[str, list[float]]:
    floor = Floor(root, driver)
    res: dict[str, list[float]] = {"initdb": [], "cold start": [], "raw clone": [],
                                   "raw clone + cold start": [], "pg clone": [],
                                   "pg clone, write load": []}
    try:
        if args.only == "wake":
            floor.initdb(floor.pgdata)
            floor.start()
            floor.fill(args.mb)
            floor.stop()
            for _ in range(args.runs):
                quiet_disk()
                res["cold start"].append(floor.start())
                floor.stop()
            with_login(res, floor.root, args.runs)
            return res
        for i in range(args.runs):
            d = floor.root / f"init{i}"
            res["initdb"].append(timed(lambda d=d: floor.initdb(d)))  # type: ignore[misc]
            shutil.rmtree(d)
        floor.initdb(floor.pgdata)
        floor.start()
        print(f"[{driver}] floor: filling {args.mb} MB", flush=True)
        floor.fill(args.mb)
        floor.stop()
        for _ in range(args.runs):
            quiet_disk()
            res["cold start"].append(floor.start())
            floor.stop()
            res["raw clone"].append(floor.raw_clone())
        res["raw clone + cold start"] = [a + b for a, b in zip(res["raw clone"],
                                                                res["cold start"], strict=True)]
        with_login(res, floor.root, args.runs)
        floor.start()
        for i in range(args.runs):
            res["pg clone"].append(floor.pg_clone(i))
        with pgbench_on(floor):
            for i in range(args.runs):
                res["pg clone, write load"].append(floor.pg_clone(100 + i))
        floor.stop()
        return res
    finally:
        floor.stop()
        shutil.rmtree(floor.root, ignore_errors=True)


def measure_argon(root: Path, driver: str, args: argparse.Namespace) -> dict[str, list[float]]:
    env = make_env(f"bench-fast-{driver}", ["--clone-driver", driver])
    env.home = root / env.home.name
    env.start(timeout=300)
    res: dict[str, list[float]] = {"project create": [], "branch, idle": [],
                                   "branch, write load": [], "wake direct": [],
                                   "wake pooled": []}
    try:
        for i in range(0 if args.only == "wake" else args.runs):
            # projects made one after another, not in a burst: a byte-copy home makes
            # the next project's clone in the background after each (project_template)
            time.sleep(args.create_gap)
            quiet_disk()
            t0 = time.perf_counter()
            r = env.api("POST", "/projects", json={"project": {"name": f"p{i}"}})
            assert r.status_code == 201, r.text
            with psycopg.connect(r.json()["connection_uris"][0]["connection_uri"]) as conn:
                conn.execute("SELECT 1").fetchone()
            res["project create"].append(time.perf_counter() - t0)
            env.api("DELETE", f"/projects/{r.json()['project']['id']}")
        b = Bench(env)
        print(f"[{driver}] argon: filling {args.mb} MB", flush=True)
        b.fill(args.mb)
        for load in (() if args.only == "wake" else (False, True)):
            with ExitStack() as stack:
                if load:
                    stack.enter_context(WriteLoad(b.plain_uri))
                for _ in range(args.runs):
                    quiet_disk()
                    t, bid = b.branch_ready()
                    res["branch, write load" if load else "branch, idle"].append(t)
                    b.delete(bid)
        pooled = env.api("GET", f"/projects/{b.pid}/connection_uri", params={
            "branch_id": b.main, "database_name": "neondb", "role_name": "neondb_owner",
            "pooled": "true"}).json()["uri"]
        for key, uri in (("wake direct", b.uri), ("wake pooled", pooled)):
            for _ in range(args.runs):
                r = env.api("POST", f"/projects/{b.pid}/endpoints/{b.main_ep}/suspend")
                assert r.status_code == 200, r.text
                time.sleep(1.0)   # the endpoint's wake rate limit refills 1 start a second
                quiet_disk()
                t0 = time.perf_counter()
                with psycopg.connect(uri, connect_timeout=60) as conn:
                    conn.execute("SELECT 1").fetchone()
                res[key].append(time.perf_counter() - t0)
        return res
    finally:
        env.stop()
        kill_leftover_postgres(env.home)
        shutil.rmtree(env.home, ignore_errors=True)


def ms(xs: list[float]) -> str:
    return f"{p50(xs) * 1000:.0f} ms"


def rows_for(driver: str, a: dict[str, list[float]], f: dict[str, list[float]]
             ) -> list[list[str]]:
    def row(step: str, key: str, floor_name: str, fkey: str, target: str) -> list[str]:
        if not a.get(key) or not f.get(fkey):
            return []
        ratio = p50(a[key]) / p50(f[fkey])
        return [driver, step, ms(a[key]), f"{p95(a[key]) * 1000:.0f} ms", floor_name,
                ms(f[fkey]), f"{ratio:.2f}x", target]
    return [r for r in [
        row("project create -> SELECT 1", "project create", "initdb", "initdb", "< 500 ms"),
        row("branch + endpoint -> SELECT 1, parent idle", "branch, idle",
            "raw clone + cold start", "raw clone + cold start", "<= 1.5x"),
        row("branch + endpoint -> SELECT 1, parent idle", "branch, idle",
            "raw clone + cold start + TLS + SCRAM", "raw clone + cold start + TLS + SCRAM",
            "<= 1.5x"),
        row("branch + endpoint -> SELECT 1, parent under pgbench", "branch, write load",
            "PG clone under pgbench", "pg clone, write load", "<= 1.0x"),
        row("wake, direct", "wake direct", "cold start", "cold start", "<= 1.2x"),
        row("wake, pooled", "wake pooled", "cold start", "cold start", "<= 1.2x"),
        row("wake, direct", "wake direct", "cold start + TLS + SCRAM",
            "cold start + TLS + SCRAM", "<= 1.2x"),
        row("wake, pooled", "wake pooled", "cold start + TLS + SCRAM",
            "cold start + TLS + SCRAM", "<= 1.2x"),
    ] if r]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--no-copy", action="store_true")
    ap.add_argument("--no-reflink", action="store_true")
    ap.add_argument("--label", default="", help="a note on the code measured")
    ap.add_argument("--create-gap", type=float, default=2.0, help="seconds between two "
                    "project creations (a byte-copy home clones the next one's data "
                    "directory in the background meanwhile)")
    ap.add_argument("--only", choices=["wake"], help="measure only these steps; prints "
                    "them without rewriting docs/benchmarks.md")
    args = ap.parse_args()
    root = Path(os.environ.get("ARGON_TEST_ROOT", "/tmp/argon-tests"))
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    rows: list[list[str]] = []
    floors: list[list[str]] = []
    note = ""

    def one(driver: str, where: Path) -> None:
        f = measure_floor(where, driver, args)
        a = measure_argon(where, driver, args)
        rows.extend(rows_for(driver, a, f))
        floors.extend([driver, k, ms(v), f"{p95(v) * 1000:.0f} ms"]
                      for k, v in f.items() if v)
        print(table(["driver", "step", "p50", "p95", "floor", "floor p50", "ratio", "target"],
                    rows), flush=True)

    if not args.no_copy:
        one("copy", root)
    if not args.no_reflink:
        try:
            with xfs_mount(root, size_bytes=(args.mb * 5 + 2048) * 2**20) as mnt:
                one("reflink", mnt)
        except XfsUnavailable as exc:
            note = f"\nreflink driver not measured: {exc}.\n"
    body = ["## Fast paths against the physical floor (issue 15)", "",
            f"A {args.mb} MB database, {args.runs} runs per figure{args.label}; projects "
            f"created {args.create_gap:g} s apart. Each Argon "
            "step goes through the user's path (API, then the returned connection string "
            "through the proxy); its floor was measured by hand on the same filesystem "
            "in the same run. PG clone = `CREATE DATABASE ... STRATEGY FILE_COPY` "
            "(`file_copy_method=clone` on reflink), pgbench = tpcb-like, 2 clients. "
            "+ TLS + SCRAM = the floor plus what a TLS + SCRAM login (TCP, channel binding, "
            "as every Argon step's client makes through the proxy) costs beyond the cold "
            "start's trusted socket login: pairs of both logins on a running Postgres with "
            "TLS (Debian's; the embedded build has none). The proxy may start a compute only "
            "once the client has proved its password (issue 8), so a wake cannot hide that "
            "login behind the start. The disk "
            "is synced before each sample (outside its time), so no step pays for the "
            "writeback of the one before.", "",
            table(["driver", "step", "p50", "p95", "floor", "floor p50", "ratio", "target"],
                  rows), "",
            "The floors:", "", table(["driver", "floor", "p50", "p95"], floors), note]
    text = "\n".join(body)
    print(text)
    if args.only:
        return
    write_section("fast-paths", "python bench/fast_paths.py " + " ".join(sys.argv[1:]), text)


if __name__ == "__main__":
    main()
