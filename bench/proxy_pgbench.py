"""pgbench through the proxy vs direct vs PgBouncer (transaction mode), plus wake latency.

Runs select-only (-S) and the default tpcb-like workload with 1 and 8 clients, TLS off and
on, against one real Postgres (the embedded install), and prints a table with TPS, the
ratios proxy/direct and proxy/PgBouncer and the added latency per round trip (select-only,
1 client: one statement is one round trip).  Then measures wake on connect (connect to
first row on a stopped Postgres) over N wakes.  Everything shares this machine's cores.

    .venv/bin/python bench/proxy_pgbench.py [--seconds 5] [--wakes 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from argon.pg import pg_os_user  # noqa: E402
from argon.proxy import TlsConfig  # noqa: E402
from tests.fixtures.common import free_port  # noqa: E402
from tests.fixtures.pgserver import PgServer, make_pg_server  # noqa: E402
from tests.fixtures.proxy import EndpointSpec, PgServerBackend, ProxyEnv  # noqa: E402

USER, PASSWORD, DB = "bench", "bench-pw", "postgres"
PGBENCH = shutil.which("pgbench") or "/usr/bin/pgbench"


def start_pgbouncer(root: Path, server: PgServer, tls: TlsConfig) -> tuple[subprocess.Popen[bytes], int]:
    owner = server.owner
    port = free_port()
    bdir = root / "pgbouncer"
    bdir.mkdir()
    (bdir / "users.txt").write_text(f'"{USER}" "{PASSWORD}"\n')
    key = bdir / "server.key"
    shutil.copy(tls.key_file, key)
    shutil.copy(tls.cert_file, bdir / "server.crt")
    (bdir / "pgbouncer.ini").write_text(f"""[databases]
* = host={server.socket_dir} port={server.port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = plain
auth_file = {bdir}/users.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 200
client_tls_sslmode = allow
client_tls_key_file = {key}
client_tls_cert_file = {bdir}/server.crt
logfile = {bdir}/pgbouncer.log
""")
    owner.chown_tree(bdir)
    os.chmod(key, 0o600)
    proc = subprocess.Popen(["pgbouncer", str(bdir / "pgbouncer.ini")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            **owner.popen_kwargs())  # type: ignore[arg-type]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            psycopg.connect(f"host=127.0.0.1 port={port} user={USER} password={PASSWORD} "
                            f"dbname={DB} sslmode=disable").close()
            return proc, port
        except psycopg.OperationalError:
            time.sleep(0.05)
    raise RuntimeError("pgbouncer did not start; see " + str(bdir / "pgbouncer.log"))


def pgbench(port: int, clients: int, seconds: int, select_only: bool, ssl: bool,
            options: str | None = None) -> tuple[float, float]:
    env = {**os.environ, "PGPASSWORD": PASSWORD, "PGSSLMODE": "require" if ssl else "disable"}
    if options:
        env["PGOPTIONS"] = options
    cmd = [PGBENCH, "-h", "127.0.0.1", "-p", str(port), "-U", USER, "-c", str(clients),
           "-j", str(min(clients, 2)), "-T", str(seconds), "-n", DB]
    if select_only:
        cmd.insert(1, "-S")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed: {out.stderr[-2000:]}")
    tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))  # type: ignore[union-attr]
    lat = float(re.search(r"latency average = ([\d.]+) ms", out.stdout).group(1))  # type: ignore[union-attr]
    return tps, lat


def measure_wakes(env: ProxyEnv, server: PgServer, n: int) -> list[float]:
    dsn = (f"host=127.0.0.1 port={env.port} user={USER} password={PASSWORD} dbname={DB} "
           "sslmode=require options=endpoint=ep-bench")
    times = []
    for _ in range(n):
        server.stop()
        t0 = time.perf_counter()
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT 1").fetchone()
        times.append(time.perf_counter() - t0)
    return times


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.report import write_section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--wakes", type=int, default=20)
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    owner = pg_os_user()
    base = Path("/tmp/argon-bench")
    base.mkdir(exist_ok=True)
    os.chmod(base, 0o755)
    root = Path(tempfile.mkdtemp(dir=base))
    os.chmod(root, 0o755)
    server = make_pg_server(root, owner)
    with (server.pgdata / "postgresql.conf").open("a") as f:
        f.write("max_connections = 100\nshared_buffers = 128MB\n")
    server.start()
    bouncer = None
    env = None
    try:
        server.create_role(USER, PASSWORD)
        with server.connect() as conn:
            conn.execute(f"ALTER ROLE {USER} SUPERUSER")
        subprocess.run([PGBENCH, "-i", "-s", "1", "-q", "-h", str(server.socket_dir), "-p",
                        str(server.port), "-U", USER, DB], check=True, capture_output=True)
        tls = TlsConfig.ensure(root / "tls", "argon.test")
        backend = PgServerBackend()
        backend.endpoints["ep-bench"] = EndpointSpec(server)
        env = ProxyEnv(backend, tls)
        bouncer, bport = start_pgbouncer(root, server, tls)
        rows = []
        for select_only in (True, False):
            for clients in [int(c) for c in args.clients.split(",")]:
                for ssl in (False, True):
                    r: dict[str, object] = {"workload": "select-only" if select_only
                                            else "tpcb-like", "clients": clients, "tls": ssl}
                    if not ssl:
                        r["direct"] = pgbench(server.port, clients, args.seconds, select_only,
                                              False)
                    r["pgbouncer"] = pgbench(bport, clients, args.seconds, select_only, ssl)
                    r["proxy"] = pgbench(env.port, clients, args.seconds, select_only, ssl,
                                         "endpoint=ep-bench")
                    rows.append(r)
                    print(r, flush=True)
        direct_by = {(r["workload"], r["clients"]): r["direct"] for r in rows if "direct" in r}
        out = ["## Proxy throughput and latency (issue 4)", "",
               f"pgbench through Argon's proxy, directly to Postgres over TCP, and through "
               f"PgBouncer (transaction mode), {args.seconds} s per cell, in the same run; "
               "Postgres, PgBouncer, the proxy and pgbench share the 2 cores. TLS rows "
               "compare against plaintext direct.", "",
               "| workload | clients | TLS | direct TPS | PgBouncer TPS | proxy TPS | "
               "proxy/direct | proxy/PgBouncer | proxy latency - direct |",
               "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            d = direct_by[(r["workload"], r["clients"])]
            b, p = r["pgbouncer"], r["proxy"]
            assert isinstance(d, tuple) and isinstance(b, tuple) and isinstance(p, tuple)
            added = (p[1] - d[1]) * 1000
            out.append(f"| {r['workload']} | {r['clients']} | {'on' if r['tls'] else 'off'} | "
                       f"{d[0]:.0f}{'' if not r['tls'] else ' (no TLS)'} | {b[0]:.0f} | "
                       f"{p[0]:.0f} | {p[0] / d[0]:.2f} | {p[0] / b[0]:.2f} | "
                       f"{added:.0f} us per txn |")
        out += ["", "Select-only with 1 client: one transaction is one round trip, so its "
                "latency delta is the proxy's added latency per round trip."]
        wakes = measure_wakes(env, server, args.wakes) if args.wakes else []
        if wakes:
            q = statistics.quantiles(wakes, n=20) if len(wakes) >= 2 else [wakes[0]] * 19
            out += ["", f"Wake on connect over {len(wakes)} wakes (a stopped Postgres started "
                    f"by the first connection through the proxy): p50 "
                    f"{statistics.median(wakes) * 1000:.0f} ms, p95 {q[18] * 1000:.0f} ms. "
                    "The platform's own wake (suspended endpoint, real compute room) is in "
                    "the core section as cold start."]
        text = "\n".join(out)
        print(text)
        write_section("proxy", "python bench/proxy_pgbench.py " + " ".join(sys.argv[1:]),
                      text)
        if args.json:
            args.json.write_text(json.dumps({"rows": rows, "wakes": wakes}, default=str))
    finally:
        if env is not None:
            env.close()
        if bouncer is not None:
            bouncer.terminate()
            bouncer.wait(10)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
