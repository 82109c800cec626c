"""SQL over HTTP: single statements, fields, command tags, value conversion and params."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

from tests.integration.proxy_sql.conftest import SqlService, sql

TYPES_DDL = """
DROP TABLE IF EXISTS types_t; DROP TYPE IF EXISTS mood;
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE types_t (
  id int, b bool, i2 int2, i4 int4, i8 int8, n numeric, f4 float4, f8 float8, t text,
  j json, jb jsonb, ia int4[], ta text[], ba bool[], fa float8[], ja jsonb[],
  ts timestamptz, by bytea, u uuid, m mood, ma mood[]);
INSERT INTO types_t VALUES
 (1, true, 32767, -2147483648, 9007199254740993, 1.50, 1.5, 0.1, 'he said "hi", \\ ünï',
  '{"b": 1, "a": [1, 2.5, null]}', '{"x": {"y": [true, null]}}', '{{1,2},{3,NULL}}',
  ARRAY['a,b', 'quote"d', 'NULL', NULL, '', 'back\\slash', ' sp '], '{t,f,NULL}',
  '{1.5,NaN,-Infinity}', ARRAY['{"k": [1]}'::jsonb, '"s"'::jsonb],
  '2024-01-02 03:04:05.678+00', '\\x00ff', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  'happy', '{sad,happy}'),
 (2, NULL, NULL, NULL, NULL, NULL, 'Infinity', 'NaN', NULL, NULL, NULL, '{}',
  '[0:1]={x,y}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, false, -1, 0, -1, -0.5, '-Infinity', 1e300, '', 'null', '[]', '{{{7}}}', '{}', NULL,
  NULL, NULL, NULL, '\\x', NULL, 'sad', '{}');
"""
TYPES_QUERY = "SELECT * FROM types_t ORDER BY id"

EXPECTED_ROW1 = {
    "id": 1, "b": True, "i2": 32767, "i4": -2147483648, "i8": "9007199254740993",
    "n": "1.50", "f4": 1.5, "f8": 0.1, "t": 'he said "hi", \\ ünï',
    "j": {"b": 1, "a": [1, 2.5, None]}, "jb": {"x": {"y": [True, None]}},
    "ia": [[1, 2], [3, None]], "ta": ["a,b", 'quote"d', "NULL", None, "", "back\\slash", " sp "],
    "ba": [True, False, None], "fa": [1.5, "NaN", "-Infinity"], "ja": [{"k": [1]}, "s"],
    "by": "\\x00ff", "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "m": "happy",
    "ma": ["sad", "happy"],
}


@pytest.fixture(scope="module")
def types_table(sql_service: SqlService) -> None:
    with sql_service.admin() as conn:
        conn.execute(TYPES_DDL)
        conn.execute("GRANT ALL ON types_t TO app_owner")


def _direct(svc: SqlService, query: str) -> tuple[list[Any], list[tuple[Any, ...]],
                                                   list[tuple[str | None, ...]]]:
    """The same query straight to Postgres: descriptions, typed rows and text rows."""
    with svc.admin() as conn:
        cur = conn.execute(query)
        desc = [(d.name, d.type_code, cur.pgresult.ftable(i), cur.pgresult.ftablecol(i),  # type: ignore[union-attr]
                 cur.pgresult.fsize(i), cur.pgresult.fmod(i))  # type: ignore[union-attr]
                for i, d in enumerate(cur.description or [])]
        typed = cur.fetchall()
        text_cur = conn.cursor()
        text_cur.execute(query)
        n = len(desc)
        texts = [tuple(None if (v := text_cur.pgresult.get_value(r, c)) is None  # type: ignore[union-attr]
                       else v.decode() for c in range(n))
                 for r in range(text_cur.pgresult.ntuples)]  # type: ignore[union-attr]
    return desc, typed, texts


def test_select_one(http: httpx.Client, sql_service: SqlService) -> None:
    r = sql(http, sql_service, {"query": "SELECT 1 AS one", "params": []})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["neon-request-id"]
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.json() == {
        "fields": [{"name": "one", "dataTypeID": 23, "tableID": 0, "columnID": 0,
                    "dataTypeSize": 4, "dataTypeModifier": -1, "format": "text"}],
        "rows": [{"one": 1}], "command": "SELECT", "rowCount": 1, "rowAsArray": False}


def test_types_match_a_direct_query(http: httpx.Client, sql_service: SqlService,
                                    types_table: None) -> None:
    r = sql(http, sql_service, {"query": TYPES_QUERY})
    assert r.status_code == 200, r.text
    body = r.json()
    desc, typed, texts = _direct(sql_service, TYPES_QUERY)
    assert [(f["name"], f["dataTypeID"], f["tableID"], f["columnID"], f["dataTypeSize"],
             f["dataTypeModifier"]) for f in body["fields"]] == desc
    assert all(f["format"] == "text" for f in body["fields"])
    assert body["command"] == "SELECT" and body["rowCount"] == 3
    rows = body["rows"]
    assert {k: v for k, v in rows[0].items() if k in EXPECTED_ROW1} == EXPECTED_ROW1
    ts = rows[0]["ts"]
    assert isinstance(ts, str) and ts == texts[0][desc.index(next(d for d in desc if d[0] == "ts"))]
    # Every converted value agrees with what Postgres gives directly.
    for row, typed_row, text_row in zip(rows, typed, texts, strict=False):
        for (name, oid, *_), direct, text in zip(desc, typed_row, text_row, strict=False):
            got = row[name]
            if text is None:
                assert got is None, name
            elif oid in (16, 21, 23):  # bool, int2, int4 are JSON
                assert got == direct, name
            elif oid in (700, 701):
                assert got == direct if math.isfinite(direct) else got == text, name
            elif oid in (114, 3802):
                assert got == direct, name
            elif name in ("ia", "ta", "ba", "fa", "ja", "ma"):
                assert isinstance(got, list), name
            else:  # int8, numeric, text, timestamptz, bytea, uuid, enum: Postgres' text
                assert got == text, name
    assert rows[1]["f4"] == "Infinity" and rows[1]["f8"] == "NaN"
    assert rows[1]["ia"] == [] and rows[1]["ta"] == ["x", "y"]  # bounds are dropped
    assert rows[2]["f4"] == "-Infinity" and rows[2]["f8"] == 1e300
    assert rows[2]["j"] is None and rows[2]["jb"] == [] and rows[2]["ia"] == [[[7]]]
    assert rows[2]["ta"] == [] and rows[2]["by"] == "\\x" and rows[2]["ma"] == []


def test_raw_text_mode_gives_postgres_text(http: httpx.Client, sql_service: SqlService,
                                          types_table: None) -> None:
    r = sql(http, sql_service, {"query": TYPES_QUERY}, Neon_Raw_Text_Output="true",
            Neon_Array_Mode="true")
    assert r.status_code == 200, r.text
    body = r.json()
    _, _, texts = _direct(sql_service, TYPES_QUERY)
    assert body["rowAsArray"] is True
    assert [tuple(row) for row in body["rows"]] == texts
    # Only the exact value "true" switches a mode on.
    r = sql(http, sql_service, {"query": "SELECT 1 AS x"}, Neon_Raw_Text_Output="yes",
            Neon_Array_Mode="TRUE")
    assert r.json()["rows"] == [{"x": 1}]


def test_array_mode_and_duplicate_column_names(http: httpx.Client,
                                               sql_service: SqlService) -> None:
    query = {"query": "SELECT 1 AS a, 'two' AS a, 3::int8 AS b"}
    r = sql(http, sql_service, query, Neon_Array_Mode="true")
    assert r.json()["rows"] == [[1, "two", "3"]] and r.json()["rowAsArray"] is True
    # Object mode writes every column, so a repeated name appears twice, as in Neon;
    # JSON parsers keep the last one.
    r = sql(http, sql_service, query)
    assert '{"a":1,"a":"two","b":"3"}' in r.text
    assert r.json()["rows"] == [{"a": "two", "b": "3"}]
    # A statement's own arrayMode wins over the header.
    r = sql(http, sql_service, {**query, "arrayMode": False}, Neon_Array_Mode="true")
    assert r.json()["rowAsArray"] is False


def test_params_of_every_kind(http: httpx.Client, sql_service: SqlService) -> None:
    params: list[Any] = [None, True, False, 42, 2.5, 'it\'s "quoted"', [1, None, 3],
                         [["a,b", 'q"'], [None, "NULL"]], {"k": [1, {"n": None}]},
                         [{"x": 1}], "2024-01-02T03:04:05Z"]
    r = sql(http, sql_service, {"query": (
        "SELECT $1::text IS NULL AS n, $2::bool AS t, $3::bool AS f, $4::int AS i, "
        "$5::float8 AS fl, $6::text AS s, $7::int[] AS ia, $8::text[] AS ta, $9::jsonb AS j, "
        "$10::jsonb[] AS ja, $11::timestamptz = '2024-01-02 03:04:05+00' AS ts, "
        "$2::text AS bool_text, $9::text AS obj_text"), "params": params})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [{
        "n": True, "t": True, "f": False, "i": 42, "fl": 2.5, "s": 'it\'s "quoted"',
        "ia": [1, None, 3], "ta": [["a,b", 'q"'], [None, "NULL"]],
        "j": {"k": [1, {"n": None}]}, "ja": [{"x": 1}], "ts": True,
        "bool_text": "true", "obj_text": '{"k": [1, {"n": null}]}'}]


def test_command_tags_and_row_counts(http: httpx.Client, sql_service: SqlService) -> None:
    def run(q: str) -> dict[str, Any]:
        r = sql(http, sql_service, {"query": q})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    created = run("CREATE TABLE IF NOT EXISTS tags_t (id int PRIMARY KEY, v text)")
    assert (created["command"], created["rowCount"], created["fields"], created["rows"]) == (
        "CREATE", None, [], [])
    assert (run("INSERT INTO tags_t VALUES (1, 'a'), (2, 'b')")["command"],
            run("UPDATE tags_t SET v = 'c'")["rowCount"]) == ("INSERT", 2)
    ins = run("INSERT INTO tags_t VALUES (3, 'x') RETURNING id, v")
    assert (ins["command"], ins["rowCount"], ins["rows"]) == ("INSERT", 1, [{"id": 3, "v": "x"}])
    deleted = run("DELETE FROM tags_t")
    assert (deleted["command"], deleted["rowCount"]) == ("DELETE", 3)
    empty = run("SELECT * FROM tags_t")
    assert (empty["rowCount"], empty["rows"], [f["name"] for f in empty["fields"]]) == (
        0, [], ["id", "v"])
    assert run("")["command"] == ""


def test_many_rows(http: httpx.Client, sql_service: SqlService) -> None:
    r = sql(http, sql_service, {"query": "SELECT g, g::text AS s FROM generate_series(1, $1) g",
                                "params": [1000]})
    body = r.json()
    assert body["rowCount"] == 1000 and len(body["rows"]) == 1000
    assert body["rows"][999] == {"g": 1000, "s": "1000"}
    assert json.loads(r.text) == body
