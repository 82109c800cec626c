"""Hostile /sql bodies: every one is a 400 in Neon's error shape naming the fault, never a
500, and the service keeps answering afterwards."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.proxy_sql.conftest import SqlService, sql

ERROR_KEYS = ["message", "code", "detail", "hint", "position", "internalPosition",
              "internalQuery", "severity", "where", "table", "column", "schema", "dataType",
              "constraint", "file", "line", "routine"]


def _post_raw(http: httpx.Client, svc: SqlService, body: bytes) -> httpx.Response:
    return http.post("/sql", content=body, headers={
        "Neon-Connection-String": svc.conn_string(), "Neon-Pool-Opt-In": "true",
        "Content-Type": "application/json"})


def _assert_400(r: httpx.Response, *fragments: str) -> dict[str, Any]:
    assert r.status_code == 400, (r.status_code, r.text[:300])
    body = r.json()
    assert list(body) == ERROR_KEYS
    for fragment in fragments:
        assert fragment in body["message"], body["message"]
    return body


def _nested(depth: int, inner: bytes = b"") -> bytes:
    return b"[" * depth + inner + b"]" * depth


RAW_BODIES = {
    "huge-float": (b'{"query": "SELECT $1", "params": [1e999]}', "number out of range"),
    "huge-negative-float": (b'{"query": "SELECT $1", "params": [-1e999]}',
                            "number out of range"),
    "huge-float-in-array": (b'{"query": "SELECT $1", "params": [[1, 1e999]]}',
                            "number out of range"),
    "huge-float-in-object": (b'{"query": "SELECT $1", "params": [{"a": 1e400}]}',
                             "number out of range"),
    "huge-integer": (b'{"query": "SELECT $1", "params": [' + b"9" * 5000 + b"]}",
                     "number out of range"),
    "nan": (b'{"query": "SELECT $1", "params": [NaN]}', "NaN is not valid JSON"),
    "infinity": (b'{"query": "SELECT $1", "params": [Infinity]}',
                 "Infinity is not valid JSON"),
    "minus-infinity": (b'{"query": "SELECT $1", "params": [-Infinity]}',
                       "-Infinity is not valid JSON"),
    "nested-100k-body": (_nested(100_000), "nested too deeply"),
    "nested-100k-params": (b'{"query": "SELECT $1", "params": ' + _nested(100_000) + b"}",
                           "nested too deeply"),
    "nested-500-array-param": (b'{"query": "SELECT $1", "params": [' + _nested(500) + b"]}",
                               "nested more than 128 levels"),
    "nested-500-object-param": (b'{"query": "SELECT $1", "params": ['
                                + b'{"a": ' * 500 + b"1" + b"}" * 500 + b"]}",
                                "nested more than 128 levels"),
    "not-utf8": (b'{"query": "SELECT \xff\xfe"}', "could not parse the HTTP request body"),
    "lone-surrogate-query": (b'{"query": "SELECT \'\\ud800\'"}', "not valid Unicode"),
    "lone-surrogate-param": (b'{"query": "SELECT $1", "params": ["\\udfff"]}',
                             "parameter $1 is not valid Unicode"),
    "nul-in-query": (b'{"query": "SELECT \'a\\u0000b\'"}', "NUL character"),
    "nul-in-param": (b'{"query": "SELECT $1", "params": ["a\\u0000"]}',
                     "parameter $1 contains a NUL character"),
    "empty-body": (b"", "could not parse the HTTP request body"),
    "truncated": (b'{"query": "SELECT 1", "par', "could not parse the HTTP request body"),
    "not-an-object": (b"[1, 2]", "could not parse the HTTP request body"),
    "string-body": (b'"SELECT 1"', "could not parse the HTTP request body"),
    "null-body": (b"null", "could not parse the HTTP request body"),
    "query-number": (b'{"query": 5}', '"query" must be a string'),
    "query-null": (b'{"query": null}', '"query" must be a string'),
    "params-string": (b'{"query": "SELECT 1", "params": "x"}', '"params" must be an array'),
    "params-object": (b'{"query": "SELECT 1", "params": {"a": 1}}',
                      '"params" must be an array'),
    "arraymode-string": (b'{"query": "SELECT 1", "arrayMode": "yes"}',
                         '"arrayMode" must be a boolean'),
    "queries-not-array": (b'{"queries": "SELECT 1"}', "could not parse the HTTP request body"),
    "queries-item-number": (b'{"queries": [5]}', '"query" must be a string'),
    "queries-huge-float": (b'{"queries": [{"query": "SELECT $1", "params": [1e999]}]}',
                           "number out of range"),
}


@pytest.mark.parametrize("case", list(RAW_BODIES))
def test_hostile_body_is_400(http: httpx.Client, sql_service: SqlService, case: str) -> None:
    body, fragment = RAW_BODIES[case]
    _assert_400(_post_raw(http, sql_service, body), fragment)


def test_bad_values_postgres_refuses_are_400(http: httpx.Client,
                                             sql_service: SqlService) -> None:
    """Values that parse as JSON but not as the parameter's type: Postgres' own error."""
    body = _assert_400(sql(http, sql_service, {"query": "SELECT $1::int4",
                                               "params": [10 ** 30]}))
    assert body["code"] == "22003"   # numeric_value_out_of_range
    body = _assert_400(sql(http, sql_service, {"query": "SELECT $1::int", "params": [True]}))
    assert body["code"] == "22P02"
    body = _assert_400(sql(http, sql_service, {"query": "SELECT $1::float8",
                                               "params": [{"a": 1}]}))
    assert body["code"] == "22P02"


def test_too_many_parameters_is_400(http: httpx.Client, sql_service: SqlService) -> None:
    r = sql(http, sql_service, {"query": "SELECT 1", "params": [1] * 70_000})
    _assert_400(r)


def test_finite_extremes_still_work(http: httpx.Client, sql_service: SqlService) -> None:
    """The refusals above are about what cannot be represented, not about big values."""
    r = sql(http, sql_service, {"query": "SELECT $1::float8 AS f, $2::numeric AS n, "
                                "$3::text AS t", "params": [1.7e308, 10 ** 40, [[1, [2]]]]})
    assert r.status_code == 200, r.text
    row = r.json()["rows"][0]
    assert row["f"] == 1.7e308
    assert row["n"] == str(10 ** 40)
    assert row["t"] == "{{1,{2}}}"
    deep = sql(http, sql_service, {"query": "SELECT $1::text AS t", "params": [
        [[[[[[[[[[1]]]]]]]]]]]})
    assert deep.status_code == 200


def test_service_answers_after_hostile_bodies(http: httpx.Client,
                                              sql_service: SqlService) -> None:
    for body, _ in RAW_BODIES.values():
        assert _post_raw(http, sql_service, body).status_code == 400
    r = sql(http, sql_service, {"query": "SELECT 1 AS one"})
    assert r.status_code == 200
    assert r.json()["rows"] == [{"one": 1}]
