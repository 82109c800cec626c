"""SQL over HTTP errors: Neon's error object, bad requests, auth, size limits, CORS."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.proxy_sql.conftest import PASSWORD, SqlService, sql

MIB = 1024 * 1024
NULL_FIELDS = ("detail", "hint", "position", "internalPosition", "internalQuery", "where",
               "table", "column", "schema", "dataType", "constraint", "file", "line",
               "routine")


def test_syntax_error_fields(http: httpx.Client, sql_service: SqlService) -> None:
    r = sql(http, sql_service, {"query": "SELECT 1 FROM nowhere WHERE"})
    assert r.status_code == 400
    body = r.json()
    assert body["message"] == "syntax error at end of input"
    assert (body["code"], body["severity"], body["position"]) == ("42601", "ERROR", "28")
    assert body["file"] and body["line"] and body["routine"]
    assert body["internalPosition"] is None and body["table"] is None
    assert list(body) == ["message", "code", "detail", "hint", "position", "internalPosition",
                          "internalQuery", "severity", "where", "table", "column", "schema",
                          "dataType", "constraint", "file", "line", "routine"]


def test_unique_violation_fields(http: httpx.Client, sql_service: SqlService) -> None:
    with sql_service.admin() as conn:
        conn.execute("DROP TABLE IF EXISTS uniq_t")
        conn.execute("CREATE TABLE uniq_t (email text CONSTRAINT uniq_email UNIQUE)")
        conn.execute("GRANT ALL ON uniq_t TO app_owner")
    q = {"query": "INSERT INTO uniq_t VALUES ($1)", "params": ["a@example.com"]}
    assert sql(http, sql_service, q).status_code == 200
    body = sql(http, sql_service, q).json()
    assert body["code"] == "23505"
    assert body["message"] == 'duplicate key value violates unique constraint "uniq_email"'
    assert body["detail"] == "Key (email)=(a@example.com) already exists."
    assert (body["schema"], body["table"], body["constraint"]) == ("public", "uniq_t",
                                                                   "uniq_email")


def test_internal_query_position(http: httpx.Client, sql_service: SqlService) -> None:
    body = sql(http, sql_service, {"query": "DO $$ BEGIN EXECUTE 'SELECT 1 +'; END $$"}).json()
    assert body["code"] == "42601" and body["position"] is None
    assert (body["internalPosition"], body["internalQuery"]) == ("11", "SELECT 1 +")
    assert "EXECUTE" in body["where"]


def test_missing_connection_string(http: httpx.Client, sql_service: SqlService) -> None:
    r = http.post("/sql", json={"query": "SELECT 1"})
    assert r.status_code == 400
    body = r.json()
    assert "Neon-Connection-String" in body["message"]
    assert body["code"] == "" and body["detail"] is None
    assert r.headers["neon-request-id"]


@pytest.mark.parametrize(("body", "needle"), [
    (b"{not json", "could not parse the HTTP request body"),
    (b'{"query": 1}', '"query" must be a string'),
    (b'{"query": "SELECT 1", "params": {"a": 1}}', '"params" must be an array'),
    (b'{"statements": []}', "expected"),
])
def test_bad_bodies(http: httpx.Client, sql_service: SqlService, body: bytes,
                    needle: str) -> None:
    r = http.post("/sql", content=body,
                  headers={"Neon-Connection-String": sql_service.conn_string()})
    assert r.status_code == 400 and needle in r.json()["message"]


@pytest.mark.parametrize(("conn_string", "needle"), [
    ("mysql://u:p@ep-quiet-lake-12345678.x/db", "incorrect scheme"),
    ("postgresql://app_owner@ep-quiet-lake-12345678.x/appdb", "required password"),
    ("postgresql://:pw@ep-quiet-lake-12345678.x/appdb", "missing username"),
    ("postgresql://app_owner:pw@ep-quiet-lake-12345678.x", "missing database name"),
    ("postgresql://app_owner:pw@ep-quiet-lake-12345678.x:99999/appdb", "invalid connection"),
    ("postgresql://app_owner:pw@ep-other-endpoint-1.x/appdb", "endpoint ep-other-endpoint-1"),
])
def test_bad_connection_strings(http: httpx.Client, sql_service: SqlService,
                                conn_string: str, needle: str) -> None:
    r = sql(http, sql_service, {"query": "SELECT 1"}, conn_string=conn_string)
    assert r.status_code == 400 and needle in r.json()["message"], r.text


def test_wrong_password_and_unknown_role(http: httpx.Client, sql_service: SqlService) -> None:
    for cs in (sql_service.conn_string(password="wrong"),
               sql_service.conn_string(role="nobody", password=PASSWORD)):
        r = sql(http, sql_service, {"query": "SELECT 1"}, conn_string=cs)
        assert r.status_code == 400
        user = "nobody" if "nobody" in cs else "app_owner"
        assert r.json()["message"] == f"password authentication failed for user '{user}'"


def test_unknown_database(http: httpx.Client, sql_service: SqlService) -> None:
    r = sql(http, sql_service, {"query": "SELECT 1"}, conn_string=sql_service.conn_string(
        db="nodb"))
    assert r.status_code == 400 and r.json()["message"] == 'database "nodb" does not exist'


def test_request_over_10_mib_is_413(http: httpx.Client, sql_service: SqlService) -> None:
    big = b'{"query": "SELECT 1", "pad": "' + b"x" * (10 * MIB) + b'"}'
    headers = {"Neon-Connection-String": sql_service.conn_string()}
    r = http.post("/sql", content=big, headers=headers)
    assert r.status_code == 413
    assert r.json()["message"] == f"request is too large (max is {10 * MIB} bytes)"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the bound applies while reading
        yield b'{"query": "SELECT 1", "pad": "'
        for _ in range(11):
            yield b"x" * MIB
        yield b'"}'
    r = http.post("/sql", content=chunks(), headers=headers)
    assert r.status_code == 413
    # Just under the limit is fine.
    ok = b'{"query": "SELECT 1 AS x", "pad": "' + b"x" * (10 * MIB - 64) + b'"}'
    assert http.post("/sql", content=ok, headers=headers).json()["rows"] == [{"x": 1}]


def test_response_over_10_mib_is_507(http: httpx.Client, sql_service: SqlService) -> None:
    r = sql(http, sql_service, {"query": "SELECT repeat('x', 1000) AS s "
                                         "FROM generate_series(1, 20000)"})
    assert r.status_code == 507
    assert r.json()["message"] == f"response is too large (max is {10 * MIB} bytes)"
    # The service is fine afterwards.
    assert sql(http, sql_service, {"query": "SELECT 1 AS x"}).json()["rows"] == [{"x": 1}]


def test_copy_is_refused(http: httpx.Client, sql_service: SqlService) -> None:
    r = sql(http, sql_service, {"query": "COPY (SELECT 1) TO STDOUT"})
    assert r.status_code == 400 and "COPY is not supported" in r.json()["message"]
    assert sql(http, sql_service, {"query": "SELECT 2 AS x"}).json()["rows"] == [{"x": 2}]


def test_cors_preflight_and_methods(http: httpx.Client, sql_service: SqlService) -> None:
    r = http.options("/sql", headers={"Origin": "https://app.example",
                                      "Access-Control-Request-Method": "POST"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"neon-connection-string", "neon-raw-text-output", "neon-array-mode",
            "neon-pool-opt-in", "neon-batch-isolation-level", "neon-batch-read-only",
            "authorization"} <= allowed
    assert r.headers["access-control-max-age"] == "86400"
    assert r.headers["allow"] == "OPTIONS, POST"
    assert r.headers["neon-request-id"]
