"""PgBouncer beside a compute: start, queries in transaction mode, re-adoption, stop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from dataclasses import replace

from argon.compute import ComputeManager, ComputeSpec, PoolerManager, PoolerSpec
from argon.compute.pooler import MIN_VERSION, pgbouncer_version
from argon.errors import Unavailable
from tests.fixtures.common import free_port, no_current_pgbouncer
from tests.fixtures.compute import TEST_ADMIN_PASSWORD, layout_of, remove_socket_dir


pytestmark = pytest.mark.skipif(no_current_pgbouncer() is not None,
                                reason=str(no_current_pgbouncer()))


@pytest.fixture
def pooled(make_compute_spec: Callable[..., ComputeSpec], compute_manager: ComputeManager,
           argon_tmp: Path) -> Iterator[tuple[PoolerManager, PoolerSpec]]:
    compute = make_compute_spec()
    compute_manager.start(compute)
    with compute_manager.connect(compute) as conn:
        conn.execute("CREATE ROLE alice LOGIN PASSWORD 'alice-pw'")
        conn.execute("CREATE TABLE items (id int)")
        conn.execute("GRANT ALL ON items TO alice")
    upstream = compute_manager.address(compute)
    assert upstream is not None
    spec = PoolerSpec(compute.endpoint_id, upstream, compute.admin_password, free_port(),
                      pool_size=2)
    _COMPUTES[compute.endpoint_id] = compute
    mgr = PoolerManager(compute_manager.owner, compute_manager.layout)
    yield mgr, spec
    mgr.stop(spec)
    remove_socket_dir(_socket_dir(spec))


_COMPUTES: dict[str, ComputeSpec] = {}


def _socket_dir(spec: PoolerSpec) -> Path:
    return layout_of(_COMPUTES[spec.endpoint_id]).pooler_socket_dir(spec.endpoint_id)


PASSWORDS = {"alice": "alice-pw", "cloud_admin": TEST_ADMIN_PASSWORD}


def _client(spec: PoolerSpec, user: str) -> psycopg.Connection:
    return psycopg.connect(host=str(_socket_dir(spec)), port=spec.port, user=user,
                           password=PASSWORDS[user], dbname="postgres", autocommit=True)


def test_query_through_pgbouncer_in_transaction_mode(
        pooled: tuple[PoolerManager, PoolerSpec]) -> None:
    mgr, spec = pooled
    pid = mgr.start_process(spec)
    assert mgr.start_process(spec) == pid                # idempotent
    assert mgr.start(spec).port == spec.port             # the pooled address
    assert PoolerManager(mgr.owner, mgr.layout).pid(spec) == pid   # re-adopted after a restart
    with _client(spec, "alice") as conn:                 # a role the pooler never listed
        assert conn.execute("SELECT current_user").fetchone() == ("alice",)
        with conn.transaction():
            conn.execute("INSERT INTO items VALUES (1)")
    # extended-protocol parameters and the settings PgBouncer tracks per client pass
    # through (others in options are refused, as by Neon's pooler: test_neon_option_forms)
    with psycopg.connect(host=str(_socket_dir(spec)), port=spec.port, user="alice",
                         password="alice-pw", dbname="postgres",
                         options="-c TimeZone=UTC") as conn:
        assert conn.execute("SELECT count(*) FROM items WHERE id = %s", [1]).fetchone() == (1,)
    with _client(spec, "cloud_admin") as admin:
        admin.execute("SELECT 1")
    admin_console = psycopg.connect(host=str(_socket_dir(spec)), port=spec.port,
                                    user="cloud_admin", password=TEST_ADMIN_PASSWORD,
                                    dbname="pgbouncer", autocommit=True)
    with admin_console:
        rows = admin_console.execute("SHOW CONFIG").fetchall()
    config = {r[0]: r[1] for r in rows}
    assert config["pool_mode"] == "transaction"
    mgr.stop(spec)
    assert mgr.pid(spec) is None
    with pytest.raises(psycopg.OperationalError):
        _client(spec, "alice")
    mgr.stop(spec)  # idempotent


def test_pooler_follows_compute_to_a_new_port(
        pooled: tuple[PoolerManager, PoolerSpec], compute_manager: ComputeManager) -> None:
    mgr, spec = pooled
    pid = mgr.start_process(spec)
    compute = _COMPUTES[spec.endpoint_id]
    compute_manager.stop(compute)
    moved = replace(compute, port=free_port())
    address = compute_manager.start(moved)
    respec = replace(spec, upstream=address)
    assert mgr.start_process(respec) == pid       # reloaded, not restarted
    with _client(respec, "alice") as conn:
        assert conn.execute("SELECT current_setting('port')").fetchone() == (str(moved.port),)


def test_missing_binary_is_reported(pg_user: object) -> None:
    with pytest.raises(Unavailable, match="no PgBouncer found.*scripts/pgbouncer.sh"):
        PoolerManager(pg_user, None, binary="/nonexistent/pgbouncer")  # type: ignore[arg-type]


def test_an_old_pgbouncer_is_refused_with_what_to_do(pg_user: object) -> None:
    old = "/usr/sbin/pgbouncer"
    version = pgbouncer_version(old) if Path(old).exists() else None
    if version is None or version >= MIN_VERSION:
        pytest.skip(f"no PgBouncer older than 1.21 at {old} to refuse")
    with pytest.raises(Unavailable, match=r"too old: pooled hosts need PgBouncer >= 1\.21"):
        PoolerManager(pg_user, None, binary=old)  # type: ignore[arg-type]


def test_port_zero_picks_or_keeps_the_port(pooled: tuple[PoolerManager, PoolerSpec]) -> None:
    mgr, spec = pooled
    auto = replace(spec, port=0, pool_size=100)
    pid = mgr.start_process(auto)
    port = mgr.port(auto)
    assert port and mgr.start_process(auto) == pid and mgr.port(auto) == port
    with psycopg.connect(host=str(_socket_dir(spec)), port=port, user="alice",
                         password="alice-pw", dbname="postgres") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    mgr.stop(auto)
    assert mgr.port(auto) is None
