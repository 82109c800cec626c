"""Time-travel queries through the proxy: ``options=neon_lsn:`` / ``neon_timestamp:``.

The connection string a user gets from Argon, plus Neon's time-travel option, reaches a
temporary read-only compute at that point; the branch itself is untouched.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg
import pytest

from tests.fixtures.argon_env import ArgonEnv
from tests.integration.core.helpers import new_project


def _with_options(uri: str, options: str) -> str:
    from urllib.parse import quote
    return f"{uri}&options={quote(options)}"


@pytest.fixture(scope="module")
def history(argon_env: ArgonEnv) -> dict:
    created = new_project(argon_env, "tt-proxy")
    uri = created["connection_uris"][0]["connection_uri"]
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id int, at timestamptz DEFAULT now())")
        conn.execute("INSERT INTO events (id) SELECT generate_series(1, 10)")
        lsn = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
        time.sleep(1.1)
        moment = datetime.now(UTC)
        time.sleep(1.1)
        conn.execute("INSERT INTO events (id) SELECT generate_series(11, 15)")
    return {"uri": uri, "lsn": lsn, "moment": moment, "created": created}


def test_neon_lsn_option_reads_the_past(history: dict) -> None:
    uri = _with_options(history["uri"], f"neon_lsn:{history['lsn']}")
    with psycopg.connect(uri, connect_timeout=120) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (10,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO events (id) VALUES (99)")
    with psycopg.connect(history["uri"]) as conn:  # the branch itself moved on
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (15,)


def test_neon_timestamp_option_reads_the_past(history: dict) -> None:
    when = history["moment"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    uri = _with_options(history["uri"], f"neon_timestamp:{when}")
    with psycopg.connect(uri, connect_timeout=120) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (10,)


def test_a_point_in_the_future_is_refused_clearly(history: dict) -> None:
    uri = _with_options(history["uri"], "neon_timestamp:2999-01-01T00:00:00Z")
    with pytest.raises(psycopg.OperationalError, match="future"):
        psycopg.connect(uri, connect_timeout=60).close()


def test_a_bad_time_travel_option_is_refused_clearly(history: dict) -> None:
    uri = _with_options(history["uri"], "neon_timestamp:yesterday")
    with pytest.raises(psycopg.OperationalError, match="ISO-8601"):
        psycopg.connect(uri, connect_timeout=60).close()
