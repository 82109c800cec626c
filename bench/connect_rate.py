"""New connections per second (TLS + SCRAM) through Argon, against PgBouncer and Postgres.

A serverless app opens a connection per request, so the connection path is the hot path.
``pgbench -C -S`` opens a new connection for every transaction; with TLS
(``sslmode=require``) and SCRAM-SHA-256 it measures handshakes per second.  In one run:

- direct Postgres: a plain Postgres of the same version (Debian's 15, as the Argon
  project here) with TLS and SCRAM on TCP;
- PgBouncer alone: PgBouncer (transaction mode, client TLS, SCRAM against an auth file)
  in front of that Postgres;
- Argon direct: a real Argon platform (``argon start``), the default project's running
  endpoint through the proxy's direct door (the proxy authenticates, then starts the
  session on a backend an earlier session of the role left, reset with ``DISCARD ALL``,
  ``argon.proxy.backend_reset``, or else logs in to the compute with SCRAM, a login begun
  while the client authenticates, ``argon.proxy.early``);
- Argon direct, no kept backends: a second Argon with ``--no-keep-direct-backends``, every
  direct connection on a backend of its own (a fork and a SCRAM login on the compute);
- Argon pooled: the same endpoint through its ``-pooler`` door (proxy, then PgBouncer;
  sessions start on ready PgBouncer logins, ``argon.proxy.spares``);
- with ``--neon-style`` (root, names under ``argon.localhost`` resolving): a second Argon
  in the Neon-style mode, its ``ep-x.argon.localhost`` and ``ep-x-pooler.argon.localhost``
  hosts routed by SNI, and ``/sql`` over HTTPS keep-alive (``api.argon.localhost:443``)
  against plain HTTP keep-alive on the same Argon.

Each cell runs ``--repeat`` times for ``--seconds``; the table shows medians.  pgbench,
the proxy, PgBouncer and Postgres share this machine's cores.  Also prints the p50 of
connect + ``SELECT 1`` from Python (psycopg) for each target.

    .venv/bin/python bench/connect_rate.py [--seconds 5] [--repeat 3] [--clients 1,8]
                                           [--neon-style]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from argon.compute.pooler import find_pgbouncer  # noqa: E402
from argon.pg import choose_install, pg_os_user  # noqa: E402
from argon.pg.osuser import OsUser  # noqa: E402
from argon.pg.scram import make_verifier  # noqa: E402
from argon.proxy import TlsConfig  # noqa: E402
from bench.report import p50, table, write_section  # noqa: E402
from argon.settings import NEON_STYLE_DOMAIN  # noqa: E402
from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres, make_env  # noqa: E402
from tests.fixtures.common import free_port  # noqa: E402
from tests.fixtures.pgserver import PgServer, make_pg_server  # noqa: E402

USER, PASSWORD, DB = "bench", "bench-pw-123", "postgres"
UNKEPT = "Argon proxy, direct host, no kept backends"
# Debian's PostgreSQL 15: the embedded wheel's build has no SSL, and the direct baseline
# needs TLS; Argon's project in this benchmark runs the same version.
PG_VERSION = 15
PGBENCH = choose_install(PG_VERSION).bin("pgbench")


def install_server_cert(tls_dir: Path, pgdata: Path, owner: OsUser) -> TlsConfig:
    """A certificate for ``argon.test`` as the cluster's ``server.crt``/``server.key``
    (Postgres's defaults for ``ssl = on``), owned by the Postgres account."""
    tls = TlsConfig.ensure(tls_dir, "argon.test")
    for name, src in (("server.crt", tls.cert_file), ("server.key", tls.key_file)):
        shutil.copy(src, pgdata / name)
        os.chmod(pgdata / name, 0o600)
        owner.chown(pgdata / name)
    return tls


def tls_postgres(root: Path) -> tuple[PgServer, TlsConfig]:
    """A plain Postgres with TLS on, SCRAM on TCP, and a role for pgbench."""
    owner = pg_os_user()
    server = make_pg_server(root, owner, PG_VERSION)
    tls = install_server_cert(root / "tls", server.pgdata, owner)
    with (server.pgdata / "postgresql.conf").open("a") as f:
        f.write("ssl = on\nmax_connections = 200\npassword_encryption = 'scram-sha-256'\n")
    server.start()
    server.create_role(USER, PASSWORD)
    with server.connect() as conn:
        conn.execute(f"ALTER ROLE {USER} SUPERUSER")
    subprocess.run([PGBENCH, "-i", "-s", "1", "-q", "-h", str(server.socket_dir), "-p",
                    str(server.port), "-U", USER, DB], check=True, capture_output=True)
    return server, tls


def pgbouncer_alone(root: Path, server: PgServer,
                    tls: TlsConfig) -> tuple[subprocess.Popen[bytes], int]:
    """PgBouncer with client TLS and SCRAM (verifier in its auth file), as Neon's pooler."""
    owner = server.owner
    port = free_port()
    bdir = root / "pgbouncer"
    bdir.mkdir()
    (bdir / "users.txt").write_text(f'"{USER}" "{make_verifier(PASSWORD)}"\n')
    shutil.copy(tls.key_file, bdir / "server.key")
    shutil.copy(tls.cert_file, bdir / "server.crt")
    # The same PgBouncer Argon's pooled doors run (not whichever is first on PATH).
    binary = os.environ.get("BENCH_PGBOUNCER") or find_pgbouncer()[0]
    (bdir / "pgbouncer.ini").write_text(f"""[databases]
* = host={server.socket_dir} port={server.port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {bdir}/users.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 500
client_tls_sslmode = require
client_tls_key_file = {bdir}/server.key
client_tls_cert_file = {bdir}/server.crt
logfile = {bdir}/pgbouncer.log
""")
    owner.chown_tree(bdir)
    os.chmod(bdir / "server.key", 0o600)
    proc = subprocess.Popen(  # type: ignore[call-overload]
        [binary, str(bdir / "pgbouncer.ini")], stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT, **owner.popen_kwargs())
    dsn = f"host=127.0.0.1 port={port} user={USER} password={PASSWORD} dbname={DB} sslmode=require"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            psycopg.connect(dsn).close()
            return proc, port
        except psycopg.OperationalError:
            time.sleep(0.05)
    raise RuntimeError("pgbouncer did not start; see " + str(bdir / "pgbouncer.log"))


def pgbench_connect(host: str, port: int, user: str, password: str, db: str, clients: int,
                    seconds: int) -> float:
    """Connections per second: pgbench -C -S (a new TLS+SCRAM connection per transaction)."""
    env = {**os.environ, "PGPASSWORD": password, "PGSSLMODE": "require"}
    cmd = [PGBENCH, "-C", "-S", "-n", "-h", host, "-p", str(port), "-U", user,
           "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds), db]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed: {out.stderr[-2000:]}")
    return float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))  # type: ignore[union-attr]


def argon_uris(env: ArgonEnv) -> tuple[str, str]:
    """A fresh PG 15 project's direct and pooled connection strings, tables loaded."""
    created = env.api("POST", "/projects", json={"project": {
        "name": "bench", "pg_version": PG_VERSION}})
    assert created.status_code == 201, created.text
    pid = created.json()["project"]["id"]
    uri, pooled_uri = (env.api("GET", f"/projects/{pid}/connection_uri", params={
        "database_name": "neondb", "role_name": "neondb_owner", "pooled": pooled}
        ).json()["uri"] for pooled in ("false", "true"))
    with psycopg.connect(uri) as conn:   # wakes the compute; pgbench -S needs its tables
        conn.execute("SELECT 1")
    subprocess.run([PGBENCH, "-i", "-s", "1", "-q", uri], check=True, capture_output=True,
                   env={**os.environ, "PGSSLROOTCERT": str(env.home / "tls" / "ca.crt")})
    return uri, pooled_uri


def target(uri: str, db: str = "neondb") -> tuple[str, int, str, str, str]:
    u = urlsplit(uri)
    assert u.hostname and u.port and u.username and u.password
    return (u.hostname, u.port, u.username, u.password, db)


def sql_p50(url: str, uri: str, n: int, verify: str | bool) -> float:
    """p50 of one ``POST /sql`` (SELECT 1) on one keep-alive connection."""
    times = []
    with httpx.Client(verify=verify, timeout=30) as client:
        for i in range(n + 5):
            t0 = time.perf_counter()
            r = client.post(url, json={"query": "SELECT 1 AS one", "params": []},
                            headers={"Neon-Connection-String": uri})
            assert r.status_code == 200, r.text
            if i >= 5:      # the first requests open the connection and warm the pool
                times.append(time.perf_counter() - t0)
    return p50(times)


def connect_select_p50(dsn: str, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT 1").fetchone()
        times.append(time.perf_counter() - t0)
    return p50(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--python-connects", type=int, default=100)
    ap.add_argument("--neon-style", action="store_true",
                    help="also measure Neon-style hosts and HTTPS /sql (root; binds 443)")
    args = ap.parse_args()
    base = Path("/tmp/argon-bench")
    base.mkdir(exist_ok=True)
    os.chmod(base, 0o755)
    root = Path(tempfile.mkdtemp(dir=base))
    os.chmod(root, 0o755)
    server, tls = tls_postgres(root)
    bouncer = None
    envs = [make_env("bench-connect")]
    sql_rows: list[list[str]] = []
    try:
        bouncer, bport = pgbouncer_alone(root, server, tls)
        envs[0].start(timeout=300)
        uri, pooled_uri = argon_uris(envs[0])
        targets = {
            "direct Postgres (TLS)": ("127.0.0.1", server.port, USER, PASSWORD, DB),
            "PgBouncer alone (TLS)": ("127.0.0.1", bport, USER, PASSWORD, DB),
            "Argon proxy, direct host": target(uri),
            "Argon proxy, pooled host": target(pooled_uri),
        }
        env_of = {name: envs[0] for name in targets if name.startswith("Argon")}
        # the same direct door with every connection on a backend of its own
        unkept = make_env("bench-unkept", ["--no-keep-direct-backends"])
        envs.append(unkept)
        unkept.start(timeout=300)
        targets[UNKEPT] = target(argon_uris(unkept)[0])
        env_of[UNKEPT] = unkept
        if args.neon_style:
            neon = make_env("bench-neon-style", ["--neon-style"])
            envs.append(neon)
            neon.start(timeout=300)
            n_uri, n_pooled = argon_uris(neon)
            targets["Argon, Neon-style host (SNI)"] = target(n_uri)
            targets["Argon, Neon-style pooled host (SNI)"] = target(n_pooled)
            env_of["Argon, Neon-style host (SNI)"] = neon
            env_of["Argon, Neon-style pooled host (SNI)"] = neon
            ca = str(neon.home / "tls" / "ca.crt")
            https = sql_p50(f"https://api.{NEON_STYLE_DOMAIN}/sql", n_uri, 200, ca)
            plain = sql_p50(f"http://127.0.0.1:{neon.http_port}/sql", n_uri, 200, False)
            sql_rows = [["HTTPS keep-alive, api." + NEON_STYLE_DOMAIN + ":443",
                         f"{https * 1000:.2f} ms", f"{https / plain:.2f}x"],
                        ["plain HTTP keep-alive, 127.0.0.1:<http-port>",
                         f"{plain * 1000:.2f} ms", "1.00x"]]
        # whose CPU a new connection costs in front of Postgres (Argon's is the one
        # process that holds the proxy, the API and the control plane)
        fronts = {"PgBouncer alone (TLS)": bouncer.pid}
        fronts.update({name: _pid(env) for name, env in env_of.items()})
        clients = [int(c) for c in args.clients.split(",")]
        for c in clients:
            for _ in range(args.repeat):   # interleaved, so drift hits every target alike
                for name, (host, port, user, pw, db) in targets.items():
                    before = cpu_seconds(fronts.get(name))
                    r = pgbench_connect(host, port, user, pw, db, c, args.seconds)
                    samples.setdefault((name, c), []).append(r)
                    if before is not None:
                        spent = cpu_seconds(fronts[name]) - before  # type: ignore[operator]
                        front_cpu.setdefault(name, []).append(spent / (r * args.seconds))
                    print(f"{name:36s} clients={c}: {r:7.1f} conn/s", flush=True)
        lat = {name: connect_select_p50(
            f"host={h} port={p} user={us} password={pw} dbname={db} sslmode=require",
            args.python_connects) for name, (h, p, us, pw, db) in targets.items()}
        write(targets, clients, lat, sql_rows, args)
    finally:
        for env in envs:
            env.stop()
            kill_leftover_postgres(env.home)
        if bouncer is not None:
            bouncer.terminate()
            bouncer.wait(10)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


samples: dict[tuple[str, int], list[float]] = {}
# CPU seconds per new connection of the process in front of Postgres (all cells)
front_cpu: dict[str, list[float]] = {}


def _pid(env: ArgonEnv) -> int:
    assert env.proc is not None and not env.launcher   # the argon process itself
    return env.proc.pid


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a running process (Linux /proc)."""
    if pid is None:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write(targets: dict[str, tuple[str, int, str, str, str]], clients: list[int],
          lat: dict[str, float], sql_rows: list[list[str]], args: argparse.Namespace) -> None:
    med = {k: statistics.median(v) for k, v in samples.items()}
    headers = ["target"] + [f"conn/s, {c} connector{'s' if c > 1 else ''}" for c in clients] + [
        f"vs PgBouncer ({c})" for c in clients] + [f"vs direct ({c})" for c in clients] + [
        "connect+SELECT 1 p50 (psycopg)", "CPU/conn in front of Postgres"]
    rows = []
    for name in targets:
        row = [name] + [f"{med[(name, c)]:.0f}" for c in clients]
        row += [f"{med[(name, c)] / med[('PgBouncer alone (TLS)', c)]:.2f}x" for c in clients]
        row += [f"{med[(name, c)] / med[('direct Postgres (TLS)', c)]:.2f}x" for c in clients]
        row.append(f"{lat[name] * 1000:.1f} ms")
        row.append(f"{statistics.median(front_cpu[name]) * 1000:.2f} ms"
                   if name in front_cpu else "-")
        rows.append(row)
    text = "\n".join([
        "## New connections per second (issues 8 and 9)", "",
        f"`pgbench -C -S` (a new TLS + SCRAM-SHA-256 connection per transaction, "
        f"sslmode=require), {args.seconds} s per cell, median of {args.repeat} interleaved "
        "runs. Argon rows go through a real `argon start` platform to a running PostgreSQL 15 "
        "endpoint (the proxy authenticates the client; direct rows then start the session on "
        "a Postgres backend an earlier session of the same role left, reset with DISCARD ALL "
        "and checked against the role's login settings, `argon.proxy.backend_reset`, or else "
        "log in to the compute with SCRAM using the client's key, a login begun while the "
        "client authenticates, which is all the \"no kept backends\" row does, an Argon "
        "started with `--no-keep-direct-backends`; pooled rows "
        "add PgBouncer 1.24 in transaction mode, sessions starting on ready PgBouncer "
        "logins, a session that left PgBouncer no state handing its login to the next "
        "client, `argon.proxy.reuse`): "
        "the default host form (`127.0.0.1:<endpoint port>`) and, where measured, the "
        "Neon-style hosts (`ep-x[-pooler].argon.localhost`, routed by SNI, per-name "
        "certificates). Baselines in the same run: a plain PostgreSQL 15 (Debian's; the "
        "embedded build has no TLS) with TLS, and PgBouncer alone (the same PgBouncer binary "
        "Argon runs, transaction mode, client TLS, SCRAM) in front of it. pgbench, the "
        "proxy, PgBouncer and Postgres share the "
        "2 cores. The last column is the CPU time a new connection costs the process in "
        "front of Postgres (PgBouncer; Argon's one process, proxy, API and control plane "
        "together), median over all cells; pgbench and the Postgres backends cost the rest.",
        "", table(headers, rows)])
    if sql_rows:
        text += "\n\n" + "\n".join([
            "`POST /sql` (`SELECT 1`) on one keep-alive connection, p50 of 200 requests, "
            "same Argon (Neon-style mode), same endpoint:", "",
            table(["transport", "p50", "vs plain HTTP"], sql_rows)])
    print(text)
    write_section("connect", "python bench/connect_rate.py " + " ".join(sys.argv[1:]), text)


if __name__ == "__main__":
    main()
