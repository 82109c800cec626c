"""The PgBouncer Argon installs (scripts/pgbouncer.sh) keeps protocol-level prepared
statements working in transaction mode, as Neon's pooler does.

Drivers such as psycopg 3 (``prepare=True`` or its automatic preparation), postgres.js and
SQLAlchemy name their statements per client connection. Behind a transaction-mode pooler
those names meet on shared server connections; PgBouncer >= 1.21 with
``max_prepared_statements`` tracks and renames them, older ones (Debian 12's 1.18) answer
``prepared statement "_pg3_0" already exists``. Both sides are checked here with a real
Postgres, real PgBouncers and psycopg 3, with SCRAM end to end and ``auth_query``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from argon.pg import OsUser
from argon.pg.scram import make_verifier
from tests.fixtures.common import free_port
from tests.fixtures.pgserver import SUPERUSER, PgServer

REPO = Path(__file__).resolve().parents[3]
INSTALL_SCRIPT = REPO / "scripts" / "pgbouncer.sh"
# Where scripts/pgbouncer.sh installs its build, then Debian's package.
CANDIDATES = ("/opt/argon/pgbouncer/bin/pgbouncer", "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
MIN_VERSION = (1, 21)
MAX_PREPARED_STATEMENTS = 200
ADMIN_PASSWORD = "admin-pw"
APP_USER, APP_PASSWORD = "app", "app-pw"


def _version(binary: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except OSError:
        return None
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out.splitlines()[0] if out else "")
    return tuple(int(g) for g in match.groups() if g is not None) if match else None


def _pgbouncers() -> dict[str, tuple[int, ...]]:
    found = [*CANDIDATES, shutil.which("pgbouncer") or ""]
    versions = {}
    for binary in dict.fromkeys(b for b in found if b and os.access(b, os.X_OK)):
        version = _version(binary)
        if version is not None:
            versions[binary] = version
    return versions


PGBOUNCERS = _pgbouncers()
CURRENT = next((b for b, v in PGBOUNCERS.items() if v >= MIN_VERSION), None)
OLD = next((b for b, v in PGBOUNCERS.items() if v < MIN_VERSION), None)
needs_current = pytest.mark.skipif(
    CURRENT is None, reason="no PgBouncer >= 1.21 here (run scripts/pgbouncer.sh as root to "
                            "build one into /opt/argon/pgbouncer)")


@pytest.fixture
def app_server(pg_server: PgServer) -> PgServer:
    """The Postgres: a SCRAM password for the superuser PgBouncer looks users up with, and
    an application role that owns a table."""
    with pg_server.connect() as conn:
        conn.execute(f"ALTER ROLE {SUPERUSER} PASSWORD '{make_verifier(ADMIN_PASSWORD)}'")
    pg_server.create_role(APP_USER, APP_PASSWORD)
    with pg_server.connect() as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, label text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g")
        conn.execute(f"GRANT SELECT, INSERT ON items TO {APP_USER}")
    return pg_server


@pytest.fixture
def start_pgbouncer(argon_tmp: Path,
                    pg_user: OsUser) -> Iterator[Callable[[str, PgServer, bool], int]]:
    """Starts a PgBouncer binary in front of a server (transaction mode, SCRAM with
    auth_query, one server connection so that clients share it); returns its TCP port.
    PgBouncer < 1.21 refuses to start with ``max_prepared_statements`` in its ini
    ("unknown parameter"), so ``track_prepared`` False leaves the setting out."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(binary: str, server: PgServer, track_prepared: bool = True) -> int:
        workdir = argon_tmp / f"pgbouncer-{len(procs)}"
        workdir.mkdir(mode=0o700)
        pg_user.chown(workdir)
        port = free_port()
        (workdir / "userlist.txt").write_text(f'"{SUPERUSER}" "{ADMIN_PASSWORD}"\n')
        (workdir / "pgbouncer.ini").write_text("\n".join([
            "[databases]",
            f"* = host=127.0.0.1 port={server.port}",   # TCP: SCRAM to Postgres as well
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "pool_mode = transaction",
            "default_pool_size = 1",
            *([f"max_prepared_statements = {MAX_PREPARED_STATEMENTS}"] if track_prepared
              else []),
            "auth_type = scram-sha-256",
            f"auth_file = {workdir / 'userlist.txt'}",
            f"auth_user = {SUPERUSER}",
            "auth_query = SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename=$1",
            "",
        ]))
        pg_user.chown_tree(workdir)
        log = workdir / "pgbouncer.log"
        proc = subprocess.Popen([binary, str(workdir / "pgbouncer.ini")],
                                stdin=subprocess.DEVNULL, stdout=log.open("ab"),
                                stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True,
                                **pg_user.popen_kwargs())  # type: ignore[arg-type]
        procs.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{binary} exited: {log.read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return port
            time.sleep(0.01)
        raise RuntimeError(f"{binary} did not listen on {port}: {log.read_text()[-2000:]}")

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _clients(port: int, n: int) -> list[psycopg.Connection]:
    return [psycopg.connect(host="127.0.0.1", port=port, user=APP_USER, password=APP_PASSWORD,
                            dbname="postgres", autocommit=True) for _ in range(n)]


def _prepared_transactions(clients: list[psycopg.Connection]) -> None:
    """Several transactions per client, interleaved across clients, each running server-side
    prepared statements (psycopg names them _pg3_0, _pg3_1, ... on every connection)."""
    for round_ in range(3):
        for i, conn in enumerate(clients):
            with conn.transaction():
                row = conn.execute("SELECT label FROM items WHERE id = %s",
                                   [i + round_ + 1], prepare=True).fetchone()
                assert row == (f"item {i + round_ + 1}",)
                count = conn.execute("SELECT count(*) FROM items WHERE id <= %s",
                                     [10 * (round_ + 1)], prepare=True).fetchone()
                assert count == (10 * (round_ + 1),)
                conn.execute("INSERT INTO items VALUES (%s, %s)",
                             [100 + 10 * round_ + i, f"from client {i}"], prepare=True)


@needs_current
def test_prepared_statements_work_across_transactions_through_the_pooler(
        app_server: PgServer, start_pgbouncer: Callable[[str, PgServer, bool], int]) -> None:
    assert CURRENT is not None
    port = start_pgbouncer(CURRENT, app_server, True)
    clients = _clients(port, 3)
    try:
        _prepared_transactions(clients)
        # The statements really are prepared on the server (under PgBouncer's own names),
        # not silently sent unnamed.
        with clients[0].transaction():
            names = [r[0] for r in clients[0].execute(
                "SELECT name FROM pg_prepared_statements").fetchall()]
        assert names and all(n.startswith("PGBOUNCER_") for n in names)
    finally:
        for conn in clients:
            conn.close()
    with app_server.connect() as conn:
        assert conn.execute("SELECT count(*) FROM items WHERE id >= 100").fetchone() == (9,)


@pytest.mark.skipif(OLD is None, reason="no PgBouncer older than 1.21 here to compare with")
def test_an_old_pgbouncer_breaks_the_same_clients(
        app_server: PgServer, start_pgbouncer: Callable[[str, PgServer, bool], int]) -> None:
    """Why Argon refuses PgBouncer < 1.21: the same workload fails on it."""
    assert OLD is not None
    port = start_pgbouncer(OLD, app_server, False)
    clients = _clients(port, 3)
    try:
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement,
                           match='prepared statement "_pg3_0" already exists'):
            _prepared_transactions(clients)
    finally:
        for conn in clients:
            conn.close()


@pytest.mark.skipif(not any(PGBOUNCERS.get(b, (0,)) >= MIN_VERSION for b in CANDIDATES[:2]),
                    reason="neither /opt/argon/pgbouncer nor /usr/sbin has PgBouncer >= 1.21; "
                           "the script would build one")
def test_install_script_finds_the_current_pgbouncer_and_does_nothing() -> None:
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    binary = result.stdout.strip()
    assert binary in PGBOUNCERS and PGBOUNCERS[binary] >= MIN_VERSION
    assert "building" not in result.stderr
