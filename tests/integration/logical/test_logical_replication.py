"""Logical replication (issue 10, point 5), with real Postgres on both sides.

- ``enable_logical_replication`` is one way, restarts the running computes (the answer
  lists those operations) and gives every compute of the project ``wal_level = logical``;
- an external Postgres (same binaries, started here) subscribes to a publication on main
  through the proxy and receives a tpcb-like load, balances intact; the slot survives a
  suspend of the endpoint and the subscriber catches up after it;
- a replication connection keeps the compute awake past its suspend timeout (through the
  proxy, and one the proxy did not route: the reconciler counts logical walsenders);
- an Argon branch subscribes to an external publication (the owner, not a superuser);
- the owner may publish FOR ALL TABLES, as on Neon (superuser-only in PostgreSQL);
- ``replication=database`` on a project without logical replication: Postgres' error.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
import pytest

from argon.pg import OsUser, choose_install
from argon.pg.binaries import supported_versions
from tests.fixtures.argon_env import ArgonEnv, running_env, wait_operations
from tests.fixtures.faults import postmaster_pid, timeline_of
from tests.fixtures.pgserver import PgServer, make_pg_server
from tests.integration.core.helpers import new_project, plain_uri

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starts Postgres servers under "
                                "the Postgres account next to Argon's: needs root")

TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")
SUMS = ("SELECT (SELECT sum(abalance) FROM pgbench_accounts),"
        " (SELECT sum(bbalance) FROM pgbench_branches),"
        " (SELECT sum(tbalance) FROM pgbench_tellers),"
        " (SELECT count(*) FROM pgbench_history)")


# the embedded PostgreSQL 18 and Debian's 15 (on 15, CREATE SUBSCRIPTION for the owner
# comes from argon.so: PostgreSQL gives it to non-superusers from 16)
VERSIONS = [pytest.param(v, marks=pytest.mark.skipif(
    v not in supported_versions(), reason=f"PostgreSQL {v} is not installed")) for v in (18, 15)]


@pytest.fixture(scope="module")
def env() -> Iterator[ArgonEnv]:
    with running_env("logical") as e:
        yield e


def _external(root: Path, owner: OsUser, *, publisher: bool = False,
              pg_version: int | None = None) -> PgServer:
    server = make_pg_server(root, owner, pg_version)
    if publisher:
        with (server.pgdata / "postgresql.conf").open("a") as f:
            f.write("wal_level = logical\n")
    server.start()
    return server


@pytest.fixture
def external(argon_tmp: Path, pg_user: OsUser) -> Iterator[PgServer]:
    server = _external(argon_tmp, pg_user)
    try:
        yield server
    finally:
        server.stop()


def _logical_project(env: ArgonEnv, name: str, **extra: Any) -> dict[str, Any]:
    return new_project(env, name, settings={"enable_logical_replication": True}, **extra)


def _has_tls(server: PgServer) -> bool:
    res = subprocess.run([server.install.bin("pg_config"), "--configure"],
                         capture_output=True, text=True, check=True)
    return "--with-openssl" in res.stdout or "--with-ssl=openssl" in res.stdout


def _libpq(uri: str, tls: bool) -> str:
    """The proxy's URI as a libpq keyword string (what CREATE SUBSCRIPTION takes): TLS
    when the subscriber's libpq has it, else plaintext (the proxy takes it from loopback;
    the embedded Postgres is built without TLS)."""
    parts = urlsplit(uri)
    # the server runs as the Postgres account with the test's HOME: no client certificate
    tls_opts = ("sslmode=require sslcert=/nonexistent/c sslkey=/nonexistent/k "
                "sslrootcert=/nonexistent/r") if tls else "sslmode=disable"
    return (f"host={parts.hostname} port={parts.port} user={unquote(parts.username or '')} "
            f"password={unquote(parts.password or '')} dbname={parts.path.lstrip('/')} "
            + tls_opts)


def _show(env: ArgonEnv, uri: str, name: str) -> str:
    with env.connect(uri) as conn:
        row = conn.execute(f"SHOW {name}").fetchone()
    assert row is not None
    return str(row[0])


def _pgbench(uri: str, *args: str) -> None:
    res = subprocess.run([choose_install().bin("pgbench"), *args, plain_uri(uri)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr


def _until(what: str, check: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _state(env: ArgonEnv, project_id: str, endpoint_id: str) -> str:
    r = env.api("GET", f"/projects/{project_id}/endpoints/{endpoint_id}")
    assert r.status_code == 200, r.text
    return str(r.json()["endpoint"]["current_state"])


def _subscribe(external: PgServer, uri: str, name: str = "s") -> None:
    """pgbench's tables (empty) on the subscriber, then a subscription to ``p``."""
    with external.connect() as conn:
        for sql in ("CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, "
                    "abalance int, filler char(84))",
                    "CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int, "
                    "filler char(88))",
                    "CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int, "
                    "tbalance int, filler char(84))",
                    "CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, "
                    "mtime timestamp, filler char(22))"):
            conn.execute(sql)
        conn.execute(f"CREATE SUBSCRIPTION {name} CONNECTION "
                     f"'{_libpq(uri, _has_tls(external))}' PUBLICATION p")


def _sums(conn: psycopg.Connection) -> tuple[Any, ...]:
    row = conn.execute(SUMS).fetchone()
    assert row is not None
    return tuple(row)


def _caught_up(env: ArgonEnv, uri: str, external: PgServer) -> Callable[[], bool]:
    def check() -> bool:
        with env.connect(uri) as pub, external.connect() as sub:
            return _sums(pub) == _sums(sub)
    return check


# -- the setting ------------------------------------------------------------------------

def test_enabling_logical_replication_is_one_way_and_restarts_the_running_computes(
        env: ArgonEnv) -> None:
    created = new_project(env, "lr-setting")
    pid, ep = created["project"]["id"], created["endpoints"][0]["id"]
    uri = created["connection_uris"][0]["connection_uri"]
    assert _show(env, uri, "wal_level") == "replica"   # starts the compute
    assert _state(env, pid, ep) == "active"

    r = env.api("PATCH", f"/projects/{pid}",
                json={"project": {"settings": {"enable_logical_replication": True}}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["project"]["settings"]["enable_logical_replication"] is True
    actions = [(o["action"], o["endpoint_id"]) for o in body["operations"]]
    assert actions == [("suspend_compute", ep), ("start_compute", ep)], actions
    wait_operations(env.api, pid, body["operations"])
    assert _state(env, pid, ep) == "active"
    assert _show(env, uri, "wal_level") == "logical"
    assert _show(env, uri, "max_replication_slots") == "10"
    assert _show(env, uri, "max_wal_senders") == "10"
    assert _show(env, uri, "max_slot_wal_keep_size") == "1GB"
    assert _show(env, uri, "wal_sender_timeout") == "1min"
    assert _show(env, uri, "idle_replication_slot_timeout") == "40h"   # PostgreSQL 18

    # one way, as on Neon; nothing changes
    r = env.api("PATCH", f"/projects/{pid}",
                json={"project": {"settings": {"enable_logical_replication": False}}})
    assert r.status_code == 400, r.text
    assert r.json()["message"] == ("Logical replication cannot be disabled once it has been "
                                   "enabled.")
    assert env.api("GET", f"/projects/{pid}").json()["project"]["settings"][
        "enable_logical_replication"] is True
    # again true: already on, no restart
    r = env.api("PATCH", f"/projects/{pid}",
                json={"project": {"settings": {"enable_logical_replication": True}}})
    assert r.status_code == 200 and r.json()["operations"] == [], r.text

    # a suspended compute and a new branch's compute start with it as well
    assert env.api("POST", f"/projects/{pid}/endpoints/{ep}/suspend").status_code == 200
    assert _show(env, uri, "wal_level") == "logical"
    r = env.api("POST", f"/projects/{pid}/branches",
                json={"branch": {"name": "dev"}, "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    wait_operations(env.api, pid, r.json()["operations"])
    role = created["roles"][0]["name"]
    dev_uri = env.api("GET", f"/projects/{pid}/connection_uri", params={
        "branch_id": r.json()["branch"]["id"], "database_name": "neondb",
        "role_name": role}).json()["uri"]
    assert _show(env, dev_uri, "wal_level") == "logical"


def test_a_project_made_with_the_setting_has_logical_computes_from_the_start(
        env: ArgonEnv) -> None:
    created = _logical_project(env, "lr-born")
    uri = created["connection_uris"][0]["connection_uri"]
    assert _show(env, uri, "wal_level") == "logical"
    # FOR ALL TABLES is the owner's (neon_superuser's), not any role's
    with env.connect(uri) as conn:
        conn.execute("CREATE ROLE plain NOLOGIN")
        conn.execute("GRANT CREATE ON DATABASE neondb TO plain")
        conn.execute("GRANT plain TO current_user")
        conn.execute("SET ROLE plain")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="superuser"):
            conn.execute("CREATE PUBLICATION everything FOR ALL TABLES")
        conn.execute("RESET ROLE")
        conn.execute("CREATE PUBLICATION everything FOR ALL TABLES")


def test_replication_on_a_project_without_logical_replication_gets_postgres_own_error(
        env: ArgonEnv) -> None:
    created = new_project(env, "lr-off")
    uri = plain_uri(created["connection_uris"][0]["connection_uri"])
    sep = "&" if "?" in uri else "?"
    res = subprocess.run([choose_install().bin("psql"), uri + sep + "replication=database",
                          "-c", "CREATE_REPLICATION_SLOT s LOGICAL pgoutput"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "logical decoding requires" in res.stderr and "wal_level" in res.stderr, res.stderr


# -- Argon publishes -------------------------------------------------------------------

@pytest.fixture
def external_same_version(request: pytest.FixtureRequest, argon_tmp: Path,
                          pg_user: OsUser) -> Iterator[PgServer]:
    """A subscriber of the test's version: Debian's 15 has TLS, so it goes over TLS."""
    server = _external(argon_tmp, pg_user, pg_version=request.node.callspec.params[
        "pg_version"])
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("pg_version", VERSIONS)
def test_an_external_postgres_subscribes_through_the_proxy_and_survives_a_suspend(
        env: ArgonEnv, external_same_version: PgServer, pg_version: int) -> None:
    external = external_same_version
    created = _logical_project(env, f"lr-publish-{pg_version}", pg_version=pg_version)
    pid, ep = created["project"]["id"], created["endpoints"][0]["id"]
    uri = created["connection_uris"][0]["connection_uri"]
    _pgbench(uri, "-i", "-s", "1", "-q")
    with env.connect(uri) as conn:   # the owner, a member of neon_superuser, not superuser
        assert conn.execute("SELECT rolsuper, rolreplication FROM pg_roles "
                            "WHERE rolname = current_user").fetchone() == (False, True)
        conn.execute(f"CREATE PUBLICATION p FOR TABLE {', '.join(TABLES)}")
    # the subscriber logs in as a role made through the API (REPLICATION, as on Neon)
    branch = created["branch"]["id"]
    r = env.api("POST", f"/projects/{pid}/branches/{branch}/roles",
                json={"role": {"name": "replicator"}})
    assert r.status_code == 201, r.text
    wait_operations(env.api, pid, r.json()["operations"])
    owner = created["roles"][0]["name"]
    replicator_uri = uri.replace(f"{owner}:{created['roles'][0]['password']}@",
                                 f"replicator:{r.json()['role']['password']}@")
    assert replicator_uri != uri
    _subscribe(external, replicator_uri)
    _until("the initial copy", _caught_up(env, uri, external), timeout=120)

    # a tpcb-like load while the subscriber streams through the proxy
    _pgbench(uri, "-c", "2", "-j", "2", "-T", "8", "-b", "tpcb-like", "-n")
    _until("the subscriber to catch up", _caught_up(env, uri, external))
    with external.connect() as sub:
        a, b, t, history = _sums(sub)
    assert a == b == t and history > 0, (a, b, t, history)
    with env.connect(uri) as conn:
        slot = conn.execute("SELECT slot_name, active FROM pg_replication_slots "
                            "WHERE slot_type = 'logical'").fetchall()
        senders = conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()
    assert slot == [("s", True)] and senders == (1,), (slot, senders)

    # suspend (the subscriber's retries may wake it again at once): the slot stays on
    # disk, and writes made after the wake reach the subscriber
    before = postmaster_pid(env.home, timeline_of(env.home, created["branch"]["id"]))
    r = env.api("POST", f"/projects/{pid}/endpoints/{ep}/suspend")
    assert r.status_code == 200, r.text
    assert before is not None and postmaster_pid(
        env.home, timeline_of(env.home, created["branch"]["id"])) != before
    _pgbench(uri, "-c", "1", "-T", "3", "-b", "tpcb-like", "-n")
    with env.connect(uri) as conn:
        assert conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall() == [("s",)]
    _until("the subscriber to catch up after the suspend", _caught_up(env, uri, external))
    with external.connect() as sub:
        a2, b2, t2, history2 = _sums(sub)
    assert a2 == b2 == t2 and history2 > history

    # and an endpoint restart
    r = env.api("POST", f"/projects/{pid}/endpoints/{ep}/restart")
    assert r.status_code == 200, r.text
    _pgbench(uri, "-c", "1", "-T", "2", "-b", "tpcb-like", "-n")
    _until("the subscriber to catch up after the restart", _caught_up(env, uri, external))
    with env.connect(uri) as conn:
        assert conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall() == [("s",)]


def test_a_replication_connection_keeps_the_compute_awake(
        env: ArgonEnv, external: PgServer) -> None:
    created = _logical_project(env, "lr-awake", default_endpoint_settings={
        "suspend_timeout_seconds": 2})
    pid, ep = created["project"]["id"], created["endpoints"][0]["id"]
    uri = created["connection_uris"][0]["connection_uri"]
    _pgbench(uri, "-i", "-s", "1", "-q")
    with env.connect(uri) as conn:   # superuser-only in PostgreSQL; Neon's owner may
        conn.execute("CREATE PUBLICATION p FOR ALL TABLES")
        assert conn.execute("SELECT pubowner::regrole::text FROM pg_publication").fetchone(
        ) == (created["roles"][0]["name"],)
    _subscribe(external, uri)
    _until("the initial copy", _caught_up(env, uri, external), timeout=120)
    time.sleep(8)   # four times the suspend timeout, the reconciler ticks every second
    assert _state(env, pid, ep) == "active"
    # only the walsender keeps it: without the subscription the compute suspends
    with external.connect() as sub:
        sub.execute("DROP SUBSCRIPTION s")
    _until("the suspend", lambda: _state(env, pid, ep) == "idle", timeout=30)


# -- Argon subscribes ------------------------------------------------------------------

@pytest.mark.parametrize("pg_version", VERSIONS)
def test_an_argon_branch_subscribes_to_an_external_publication(
        env: ArgonEnv, argon_tmp: Path, pg_user: OsUser, pg_version: int) -> None:
    publisher = _external(argon_tmp, pg_user, publisher=True)
    try:
        publisher.create_role("pub", "pub-secret-1")
        with publisher.connect() as conn:
            conn.execute("ALTER ROLE pub REPLICATION")
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text)")
            conn.execute("INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 500) g")
            conn.execute("GRANT SELECT ON orders TO pub")
            conn.execute("CREATE PUBLICATION orders_pub FOR TABLE orders")
        created = new_project(env, f"lr-subscribe-{pg_version}", pg_version=pg_version)
        uri = created["connection_uris"][0]["connection_uri"]
        no_password = f"host=127.0.0.1 port={publisher.port} user=pub dbname=postgres"
        with env.connect(uri) as conn:   # the owner role, through the proxy
            assert conn.execute("SELECT rolsuper FROM pg_roles "
                                "WHERE rolname = current_user").fetchone() == (False,)
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text)")
            # PostgreSQL 16's rule for non-superusers (argon.so applies it on 15)
            with pytest.raises(psycopg.Error, match="password is required"):
                conn.execute(f"CREATE SUBSCRIPTION orders_sub CONNECTION '{no_password}' "
                             "PUBLICATION orders_pub")
            conn.execute(f"CREATE SUBSCRIPTION orders_sub CONNECTION "
                         f"'{no_password} password=pub-secret-1' PUBLICATION orders_pub")
            owner = conn.execute("SELECT subowner::regrole::text FROM pg_subscription").fetchone()
            assert owner == (created["roles"][0]["name"],)

        def count() -> int:
            with env.connect(uri) as conn:
                row = conn.execute("SELECT count(*) FROM orders").fetchone()
            return int(row[0]) if row else 0

        _until("the initial copy", lambda: count() == 500)
        with publisher.connect() as conn:
            conn.execute("INSERT INTO orders SELECT g, 'new' FROM generate_series(501, 520) g")
        _until("the new rows", lambda: count() == 520)
        with env.connect(uri) as conn:
            conn.execute("DROP SUBSCRIPTION orders_sub")
    finally:
        publisher.stop()


def test_the_reconciler_counts_a_logical_walsender_the_proxy_did_not_see(
        env: ArgonEnv) -> None:
    """Idleness is decided by the proxy's sessions first, then by asking Postgres: a
    logical walsender there (here: opened on the compute's own socket, as root) is
    activity; the compute suspends once it is gone."""
    created = _logical_project(env, "lr-walsender", default_endpoint_settings={
        "suspend_timeout_seconds": 2})
    pid, ep = created["project"]["id"], created["endpoints"][0]["id"]
    role = created["roles"][0]
    pidfile = (env.home / "timelines" / timeline_of(env.home, created["branch"]["id"])
               / "pgdata" / "postmaster.pid").read_text().splitlines()
    port, sockets = pidfile[3], pidfile[4]
    with psycopg.connect(host=sockets, port=port, user=role["name"], dbname="neondb",
                         password=role["password"], replication="database",
                         autocommit=True):
        time.sleep(8)   # four times the suspend timeout
        assert _state(env, pid, ep) == "active"
    _until("the suspend", lambda: _state(env, pid, ep) == "idle", timeout=30)
