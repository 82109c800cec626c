"""The relay and handshake on both event loops (uvloop in production, asyncio as the
reference), with the flows that stress them: TLS + channel binding, a large result (flow
control), COPY both ways, a cancel, protocol version negotiation."""

from __future__ import annotations

import threading

import psycopg
import pytest

from tests.fixtures.pgserver import PgServer
from tests.fixtures.proxy import DOMAIN, ProxyEnv


@pytest.fixture(params=["uvloop", "asyncio"])
def proxy_loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def dsn(proxy_env: ProxyEnv, pg_server: PgServer) -> str:
    pg_server.create_role("frank", "pw-frank")
    ca = proxy_env.tls.ca_file if proxy_env.tls else ""
    return (f"host=ep-one.{DOMAIN} hostaddr=127.0.0.1 port={proxy_env.port} user=frank "
            f"password=pw-frank dbname=postgres sslmode=verify-full sslrootcert={ca} "
            "channel_binding=require")


def test_large_results_and_copy(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT g, repeat('x', 200) FROM generate_series(1, 50000) g"
                            ).fetchall()
        assert len(rows) == 50000 and rows[-1][0] == 50000
        conn.execute("CREATE TEMP TABLE c (a int, b text)")
        with conn.cursor() as cur:
            with cur.copy("COPY c FROM STDIN") as copy:
                for i in range(20000):
                    copy.write_row((i, "y" * 100))
            assert cur.execute("SELECT count(*), sum(a) FROM c").fetchone() == (
                20000, sum(range(20000)))
            with cur.copy("COPY c TO STDOUT") as copy:
                out = b"".join(bytes(chunk) for chunk in copy)
            assert out.count(b"\n") == 20000


def test_cancel(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        timer = threading.Timer(0.3, conn.cancel_safe)
        timer.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(20)")
        timer.cancel()


def test_newer_protocol_is_negotiated_down(dsn: str) -> None:
    # libpq 18 asks for protocol 3.2 with max_protocol_version=latest; the proxy answers
    # NegotiateProtocolVersion (3.0) and the session goes on.
    with psycopg.connect(dsn + " max_protocol_version=latest") as conn:
        assert conn.execute("SELECT 'negotiated'").fetchone() == ("negotiated",)
        assert conn.pgconn.protocol_version == 3
