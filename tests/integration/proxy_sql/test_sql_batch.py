"""SQL over HTTP batches: one transaction, with Neon's isolation/read-only headers."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.proxy_sql.conftest import SqlService, sql


@pytest.fixture
def batch_table(sql_service: SqlService) -> str:
    with sql_service.admin() as conn:
        conn.execute("DROP TABLE IF EXISTS batch_t")
        conn.execute("CREATE TABLE batch_t (id int PRIMARY KEY, v text)")
        conn.execute("GRANT ALL ON batch_t TO app_owner")
    return "batch_t"


def _count(svc: SqlService) -> int:
    with svc.admin() as conn:
        row = conn.execute("SELECT count(*) FROM batch_t").fetchone()
        assert row is not None
        return int(row[0])


def test_batch_commits_all_statements(http: httpx.Client, sql_service: SqlService,
                                      batch_table: str) -> None:
    r = sql(http, sql_service, {"queries": [
        {"query": "INSERT INTO batch_t VALUES ($1, $2)", "params": [1, "a"]},
        {"query": "INSERT INTO batch_t VALUES ($1, $2) RETURNING id", "params": [2, "b"]},
        {"query": "SELECT count(*)::int AS n FROM batch_t", "arrayMode": True},
    ]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [(x["command"], x["rowCount"]) for x in results] == [
        ("INSERT", 1), ("INSERT", 1), ("SELECT", 1)]
    assert results[1]["rows"] == [{"id": 2}] and results[2]["rows"] == [[2]]
    assert _count(sql_service) == 2
    assert "neon-batch-read-only" not in r.headers


def test_failing_batch_persists_nothing(http: httpx.Client, sql_service: SqlService,
                                        batch_table: str) -> None:
    r = sql(http, sql_service, {"queries": [
        {"query": "INSERT INTO batch_t VALUES (1, 'a')"},
        {"query": "INSERT INTO batch_t VALUES (2, 'b')"},
        {"query": "INSERT INTO batch_t VALUES (1, 'duplicate')"},
        {"query": "INSERT INTO batch_t VALUES (3, 'c')"},
    ]})
    assert r.status_code == 400
    assert r.json()["code"] == "23505" and r.json()["constraint"] == "batch_t_pkey"
    assert _count(sql_service) == 0
    # The connection that ran it is clean for the next request.
    r = sql(http, sql_service, {"query": "SELECT count(*)::int AS n FROM batch_t"})
    assert r.json()["rows"] == [{"n": 0}]


def test_read_only_batch_refuses_writes(http: httpx.Client, sql_service: SqlService,
                                        batch_table: str) -> None:
    headers = {"Neon_Batch_Read_Only": "true", "Neon_Batch_Isolation_Level": "Serializable",
               "Neon_Batch_Deferrable": "true"}
    r = sql(http, sql_service, {"queries": [
        {"query": "SELECT current_setting('transaction_read_only') AS ro, "
                  "current_setting('transaction_isolation') AS iso, "
                  "current_setting('transaction_deferrable') AS d"}]}, **headers)
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["rows"] == [{"ro": "on", "iso": "serializable", "d": "on"}]
    assert r.headers["neon-batch-read-only"] == "true"
    assert r.headers["neon-batch-deferrable"] == "true"
    assert r.headers["neon-batch-isolation-level"] == "Serializable"

    r = sql(http, sql_service, {"queries": [{"query": "INSERT INTO batch_t VALUES (1, 'a')"}]},
            **headers)
    assert r.status_code == 400
    assert r.json()["code"] == "25006"  # read_only_sql_transaction
    assert _count(sql_service) == 0


@pytest.mark.parametrize(("header", "level"), [("ReadCommitted", "read committed"),
                                               ("RepeatableRead", "repeatable read"),
                                               ("ReadUncommitted", "read uncommitted")])
def test_isolation_levels(http: httpx.Client, sql_service: SqlService, header: str,
                          level: str) -> None:
    r = sql(http, sql_service, {"queries": [{"query": "SHOW transaction_isolation"}]},
            Neon_Batch_Isolation_Level=header)
    assert r.json()["results"][0]["rows"] == [{"transaction_isolation": level}]


def test_unknown_isolation_level_is_rejected(http: httpx.Client,
                                             sql_service: SqlService) -> None:
    r = sql(http, sql_service, {"queries": [{"query": "SELECT 1"}]},
            Neon_Batch_Isolation_Level="serializable")
    assert r.status_code == 400
    assert "invalid isolation level" in r.json()["message"]
