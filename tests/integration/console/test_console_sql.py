"""The SQL editor in a real Chromium, and its service (``control/sql_runner.py``) over
the console API: sessions as the chosen role (never cloud_admin), grids with types,
errors with positions, cancel, history, EXPLAIN, time travel, bounded results, and
precise errors for bad input."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tests.fixtures.argon_env import ArgonEnv, wait_operations
from tests.integration.console.conftest import (
    new_project,
    pick_time,
    screenshot,
    signed_in,
    sql_text,
    type_sql,
)

pytestmark = pytest.mark.skipif(__import__("os").geteuid() != 0,
                                reason="Argon runs Postgres as the argon account: needs root")


@pytest.fixture(scope="module")
def proj(console_env: ArgonEnv) -> dict[str, Any]:
    created = new_project(console_env, "sql-editor")
    p = created["project"]
    uri = created["connection_uris"][0]["connection_uri"]
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g")
    db = created["databases"][0]["name"]
    owner = created["databases"][0]["owner_name"]
    return {"id": p["id"], "branch": p["default_branch_id"], "uri": uri, "db": db,
            "owner": owner}


def _sql(env: ArgonEnv, proj: dict[str, Any], query: str, **body: Any) -> Any:
    payload = {"query": query, "database": proj["db"], **body}
    return env.api("POST", f"/console/projects/{proj['id']}/branches/{proj['branch']}/sql",
                   json=payload)


def _editor(page: Any, env: ArgonEnv, proj: dict[str, Any]) -> Any:
    signed_in(page, env, f"#/projects/{proj['id']}/sql")
    page.get_by_test_id("sql-role-picker").locator(f"option[value='{proj['owner']}']").wait_for(
        state="attached")
    return page


def _run(page: Any, query: str) -> None:
    type_sql(page, query)
    page.get_by_test_id("sql-run").click()


# -- in the browser ------------------------------------------------------------------------

def test_a_query_shows_a_grid_with_column_types(console_env: ArgonEnv, proj: dict[str, Any],
                                                page: Any) -> None:
    _editor(page, console_env, proj)
    _run(page, "SELECT id, name, id * 1.5 AS half, current_user AS who FROM items "
               "ORDER BY id LIMIT 3")
    grid = page.get_by_test_id("result-grid")
    grid.wait_for()
    assert grid.get_by_test_id("grid-col-0").inner_text().startswith("id")
    assert grid.get_by_test_id("grid-type-0").inner_text() == "int4"
    assert grid.get_by_test_id("grid-type-1").inner_text() == "text"
    assert grid.get_by_test_id("grid-type-2").inner_text() == "numeric"
    assert grid.get_by_test_id("cell-2-1").inner_text() == "item 3"
    assert grid.get_by_test_id("cell-0-3").inner_text() == proj["owner"]   # not cloud_admin
    assert "3 rows" in page.get_by_test_id("sql-status").inner_text()
    screenshot(page, "sql-editor")


def test_a_syntax_error_shows_its_message_and_position(console_env: ArgonEnv,
                                                      proj: dict[str, Any], page: Any) -> None:
    _editor(page, console_env, proj)
    _run(page, "SELECT id\n  FRM items")
    err = page.get_by_test_id("sql-error")
    err.wait_for()
    assert 'syntax error at or near "items"' in err.get_by_test_id("sql-error-message").inner_text()
    assert "42601" in err.get_by_test_id("sql-error-sqlstate").inner_text()
    where = err.get_by_test_id("sql-error-position")
    assert "line 2, column 7" in where.inner_text()
    assert where.get_attribute("data-position") == "17"
    marked = page.evaluate(
        "() => document.querySelector('[data-testid=sql-editor]').CodeMirror.getSelection()")
    assert marked == "items"   # the editor selects the word the error points at
    screenshot(page, "sql-error")


def test_cancel_stops_a_long_query_at_once(console_env: ArgonEnv, proj: dict[str, Any],
                                           page: Any) -> None:
    _editor(page, console_env, proj)
    _run(page, "SELECT pg_sleep(30)")
    cancel = page.get_by_test_id("sql-cancel")
    page.wait_for_function("() => !document.querySelector('[data-testid=sql-cancel]').disabled")
    time.sleep(0.5)   # the query is on the server by now
    started = time.monotonic()
    cancel.click()
    err = page.get_by_test_id("sql-error")
    err.wait_for(timeout=10_000)
    assert time.monotonic() - started < 10
    assert "canceling statement due to user request" in err.inner_text()
    assert "57014" in err.inner_text()


def test_history_lists_past_queries(console_env: ArgonEnv, proj: dict[str, Any],
                                    page: Any) -> None:
    marker = f"SELECT 'history-{time.time_ns()}' AS mark"
    assert _sql(console_env, proj, marker).status_code == 200
    _editor(page, console_env, proj)
    item = page.get_by_test_id("history-item").filter(has_text=marker)
    item.wait_for()
    item.click()   # loads it back into the editor
    assert sql_text(page) == marker
    api = console_env.api("GET", f"/console/projects/{proj['id']}/sql/history?limit=5").json()
    assert api["history"][0]["query"] == marker and api["history"][0]["status"] == "ok"


def test_explain_shows_a_plan(console_env: ArgonEnv, proj: dict[str, Any], page: Any) -> None:
    _editor(page, console_env, proj)
    type_sql(page, "SELECT * FROM items WHERE id = 42")
    page.get_by_test_id("sql-explain").click()
    # the plan, or the error the console showed instead (named in the failure)
    page.locator("[data-testid=explain-plan], [data-testid=sql-error], "
                 "[data-testid=sql-request-error]").first.wait_for()
    plan = page.get_by_test_id("explain-plan")
    assert plan.count() == 1, page.get_by_test_id("sql-results").inner_text()
    text = plan.inner_text()
    assert ("Index Scan" in text or "Index Only Scan" in text) and "items_pkey" in text, text
    page.get_by_test_id("sql-analyze").check()
    page.get_by_test_id("sql-explain").click()
    page.get_by_test_id("explain-plan").filter(has_text="actual time").wait_for()
    assert "Execution" in page.get_by_test_id("explain-plan").inner_text()
    screenshot(page, "sql-explain")


def test_time_travel_shows_a_row_deleted_since(console_env: ArgonEnv, proj: dict[str, Any],
                                               page: Any) -> None:
    with psycopg.connect(proj["uri"], autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes VALUES (1, 'kept'), (2, 'deleted later')")
        time.sleep(2.2)
        moment = datetime.now(UTC)
        time.sleep(1.2)
        conn.execute("DELETE FROM notes WHERE id = 2")
    _editor(page, console_env, proj)
    _run(page, "SELECT body FROM notes ORDER BY id")
    page.get_by_test_id("result-grid").wait_for()
    assert page.get_by_test_id("result-grid").locator("tbody tr").count() == 1
    page.get_by_test_id("sql-timetravel").check()
    pick_time(page, "sql-timestamp", moment.isoformat())
    page.get_by_test_id("sql-run").click()
    page.get_by_test_id("sql-status").filter(has_text="Done in").wait_for(timeout=120_000)
    assert " at " in page.get_by_test_id("sql-status").inner_text()
    grid = page.get_by_test_id("result-grid")
    assert grid.locator("tbody tr").count() == 2
    assert grid.get_by_test_id("cell-1-0").inner_text() == "deleted later"
    # the past is read-only
    _run(page, "DELETE FROM notes")
    page.get_by_test_id("sql-error").filter(has_text="25006").wait_for(timeout=120_000)


# -- the service over the console API ------------------------------------------------------

def test_sessions_run_as_the_role_not_cloud_admin(console_env: ArgonEnv,
                                                 proj: dict[str, Any]) -> None:
    out = _sql(console_env, proj, "SELECT current_user, session_user, "
                                  "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)")
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["error"] is None
    assert body["results"][0]["rows"] == [[proj["owner"], proj["owner"], False]]
    assert body["role"] == proj["owner"]


def test_a_role_without_the_right_gets_42501(console_env: ArgonEnv,
                                             proj: dict[str, Any]) -> None:
    r = console_env.api("POST", f"/projects/{proj['id']}/branches/{proj['branch']}/roles",
                        json={"role": {"name": "reader"}})
    assert r.status_code == 201, r.text
    wait_operations(console_env.api, proj["id"], r.json()["operations"])
    out = _sql(console_env, proj, "DROP TABLE items", role="reader").json()
    assert out["role"] == "reader"
    assert out["error"]["sqlstate"] == "42501", out
    assert "must be owner" in out["error"]["message"]
    out = _sql(console_env, proj, "SELECT pg_read_file('/etc/passwd')", role="reader").json()
    assert out["error"]["sqlstate"] == "42501"
    with psycopg.connect(proj["uri"]) as conn:   # still there
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (500,)


def test_results_are_cut_at_the_row_and_byte_limits(console_env: ArgonEnv,
                                                   proj: dict[str, Any]) -> None:
    body = _sql(console_env, proj, "SELECT * FROM items ORDER BY id", max_rows=7).json()
    res = body["results"][0]
    assert body["truncated"] and res["truncated"]
    assert len(res["rows"]) == 7 and res["row_count"] == 500
    assert "showing 7 of 500 rows" in body["truncated_message"]
    assert "7 rows" in body["truncated_message"]
    body = _sql(console_env, proj, "SELECT repeat('x', 1000) FROM items", max_bytes=4096).json()
    assert body["truncated"] and 1 <= len(body["results"][0]["rows"]) <= 4
    assert "4096 bytes" in body["truncated_message"]
    body = _sql(console_env, proj, "SELECT 1").json()
    assert body["truncated"] is False and body["truncated_message"] is None


@pytest.mark.parametrize(("change", "status", "text"), [
    ({"branch": "br-does-not-exist"}, 404, "br-does-not-exist"),
    ({"database": "nodb"}, 404, "nodb"),
    ({"role": "nobody_here"}, 404, "nobody_here"),
    ({"role": "cloud_admin"}, 400, "platform"),
    ({"max_rows": 0}, 400, "max_rows"),
    ({"timeout_ms": 10**9}, 400, "timeout_ms"),
    ({"query": "  "}, 400, "empty"),
    ({"explain": "maybe"}, 400, "explain"),
    ({"timestamp": "2026-01-01T00:00:00"}, 400, "time zone"),
])
def test_bad_input_is_a_precise_error(console_env: ArgonEnv, proj: dict[str, Any],
                                      change: dict[str, Any], status: int, text: str) -> None:
    branch = change.pop("branch", proj["branch"])
    body = {"query": "SELECT 1", "database": proj["db"], **change}
    r = console_env.api("POST", f"/console/projects/{proj['id']}/branches/{branch}/sql", json=body)
    assert r.status_code == status, r.text
    assert text in r.json()["message"]


def test_statement_timeout_and_cancel_of_an_unknown_id(console_env: ArgonEnv,
                                                       proj: dict[str, Any]) -> None:
    body = _sql(console_env, proj, "SELECT pg_sleep(5)", timeout_ms=300).json()
    assert body["error"]["sqlstate"] == "57014"
    assert "statement timeout" in body["error"]["message"]
    r = console_env.api("POST", f"/console/projects/{proj['id']}/sql/cancel",
                        json={"query_id": "nothing-runs"})
    assert r.status_code == 200 and r.json()["cancelled"] is False
