"""``@neondatabase/serverless`` (npm) against a running Argon: SQL over HTTP with
``neon()``, ``Pool``/``Client`` over the proxy's WebSocket, and each answer compared with
the same query run directly with psycopg over the API's connection string."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.compat.conftest import NodeResult, need_node, run_node_script
from tests.fixtures.argon_env import ArgonEnv

pytestmark = pytest.mark.timeout(300)


def need_serverless() -> None:
    need_node("@neondatabase/serverless")


def ep_host_uri(uri: str, endpoint_id: str) -> str:
    """The same string with the Neon-style host ``ep-x.argon.test`` in place of
    ``127.0.0.1:<port>``: the driver drops the port in places (``poolQueryViaFetch``)
    and the proxy reads the endpoint from the host's first label."""
    scheme, rest = uri.split("://", 1)
    creds, tail = rest.split("@", 1)
    _hostport, path = tail.split("/", 1)
    return f"{scheme}://{creds}@{endpoint_id}.argon.test/{path}"


@pytest.fixture(scope="module")
def project(argon_env: ArgonEnv) -> Iterator[dict[str, Any]]:
    need_serverless()
    r = argon_env.api("POST", "/projects",
                      json={"project": {"name": f"driver-{uuid.uuid4().hex[:8]}"}})
    assert r.status_code == 201, r.text
    body = r.json()
    yield {"id": body["project"]["id"], "endpoint": body["endpoints"][0]["id"],
           "uri": body["connection_uris"][0]["connection_uri"]}
    argon_env.api("DELETE", f"/projects/{body['project']['id']}")


@pytest.fixture
def table(argon_env: ArgonEnv, project: dict[str, Any]) -> str:
    name = f"t_{uuid.uuid4().hex[:8]}"
    with argon_env.connect(project["uri"]) as conn:
        conn.execute(f"CREATE TABLE {name} (x int)")
    return name


def driver(env: ArgonEnv, uri: str, mode: str, table: str = "") -> Any:
    res: NodeResult = run_node_script("serverless_driver.mjs", {
        "DATABASE_URL": uri, "HTTP_PORT": str(env.http_port), "TABLE": table, "MODE": mode},
        timeout=120)
    assert res.code == 0, f"serverless driver ({mode}) failed:\n{res.stderr}\n{res.stdout}"
    return res.json()


TYPES_SQL = """SELECT 41 + 1 AS i, '9007199254740993'::int8 AS big,
    '12345678901234567890.50'::numeric AS num, '{"a":[1,2],"b":"x"}'::json AS j,
    '{"k":true}'::jsonb AS jb, ARRAY[1,2,3] AS ints, ARRAY['a','b c'] AS texts,
    NULL::text AS nothing, true AS yes, false AS no,
    '2024-02-03 04:05:06.789+00'::timestamptz AS ts, 'it''s' AS s"""


def test_neon_http_queries_match_psycopg(argon_env: ArgonEnv, project: dict[str, Any],
                                         table: str) -> None:
    out = driver(argon_env, project["uri"], "http", table)
    with argon_env.connect(project["uri"]) as conn:
        direct = conn.execute(TYPES_SQL).fetchone()
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
    assert direct is not None
    i, big, num, j, jb, ints, texts, nothing, yes, no, ts, s = direct
    row = out["types"][0]
    # int8 and numeric come back as strings (no precision loss), equal to Postgres' text.
    assert row["big"] == str(big) == "9007199254740993"
    assert row["num"] == str(num) and Decimal(row["num"]) == num
    assert row["i"] == i == 42
    assert row["j"] == j and row["jb"] == jb
    assert row["ints"] == ints and row["texts"] == texts
    assert row["nothing"] is None and nothing is None
    assert row["yes"] is yes is True and row["no"] is no is False
    assert dt.datetime.fromisoformat(row["ts"].replace("Z", "+00:00")) == ts
    assert row["s"] == s == "it's"

    assert out["query"] == [{"c": "abcd", "d": 42}]
    # transaction(): the options reach Postgres, every query's rows come back in order.
    assert out["tx"] == [[{"iso": "serializable"}], [{"ro": "on"}], [{"n": 7}]]
    assert out["readOnlyWrite"]["code"] == "25006", out["readOnlyWrite"]
    assert out["rolledBack"]["code"] == "22012", out["rolledBack"]
    # Neither the read-only INSERT nor the one before the failure is left behind.
    assert out["countAfter"] == [{"n": 0}]
    assert out["full"] == {"command": "SELECT", "rowCount": 1, "rows": [{"a": 1, "b": "x"}],
                           "fields": ["a", "b"], "rowAsArray": False}
    assert out["arrays"] == [[1, "x"]]
    assert out["badSql"]["code"] == "42601"


def _check_ws(argon_env: ArgonEnv, out: Any, table: str, uri: str) -> None:
    assert out["pool"] == [{"n": 42, "t": "hi"}]
    assert out["inTx"] == [{"s": 30}]
    assert out["afterRollback"] == [{"xs": [10, 20]}]
    assert out["error"]["code"] == "22012"
    assert out["usableAfterError"] == [{"five": 5}]
    assert out["notification"] == {"channel": "compat_chan", "payload": "hello from ws"}
    with argon_env.connect(uri) as conn:
        rows = conn.execute(f"SELECT x FROM {table} ORDER BY x").fetchall()
    assert rows == [(10,), (20,)], "COMMIT must persist and ROLLBACK must not"


def test_pool_and_client_over_websocket(argon_env: ArgonEnv, project: dict[str, Any],
                                        table: str) -> None:
    uri = ep_host_uri(project["uri"], project["endpoint"])
    _check_ws(argon_env, driver(argon_env, uri, "ws", table), table, project["uri"])


def test_pool_over_websocket_with_the_printed_string(argon_env: ArgonEnv,
                                                     project: dict[str, Any],
                                                     table: str) -> None:
    _check_ws(argon_env, driver(argon_env, project["uri"], "ws", table), table,
              project["uri"])


def test_pool_query_via_fetch_uses_http(argon_env: ArgonEnv, project: dict[str, Any]) -> None:
    # The script points the WebSocket proxy at a closed port: only HTTP can answer.
    uri = ep_host_uri(project["uri"], project["endpoint"])
    out = driver(argon_env, uri, "via_fetch")
    assert out == {"rows": [{"n": 42}], "fetches": 1}
