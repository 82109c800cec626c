"""The tables view and the schema diff in a real Chromium: browse, page and sort rows,
column types and indexes, edit a cell (the UPDATE shown, the value in the database),
tables without a primary key refused; a column added on a branch shows in the diff."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tests.fixtures.argon_env import ArgonEnv, wait_operations
from tests.integration.console.conftest import new_project, pick_time, screenshot, signed_in

pytestmark = pytest.mark.skipif(__import__("os").geteuid() != 0,
                                reason="Argon runs Postgres as the argon account: needs root")


@pytest.fixture(scope="module")
def proj(console_env: ArgonEnv) -> dict[str, Any]:
    created = new_project(console_env, "tables-view")
    p = created["project"]
    uri = created["connection_uris"][0]["connection_uri"]
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, "
                     "born date, score numeric(6,2) DEFAULT 0)")
        conn.execute("CREATE INDEX people_name ON people (name)")
        conn.execute("INSERT INTO people SELECT g, 'person ' || lpad(g::text, 3, '0'), "
                     "date '2000-01-01' + g, g / 4.0 FROM generate_series(1, 120) g")
        conn.execute("CREATE TABLE loose (a int, b text)")
        conn.execute("INSERT INTO loose VALUES (1, 'one')")
    return {"id": p["id"], "branch": p["default_branch_id"], "uri": uri,
            "db": created["databases"][0]["name"],
            "owner": created["databases"][0]["owner_name"]}


def _open_table(page: Any, env: ArgonEnv, proj: dict[str, Any], table: str) -> None:
    signed_in(page, env, f"#/projects/{proj['id']}/tables")
    page.get_by_test_id(f"table-item-public.{table}").click()
    page.get_by_test_id("rows-grid").wait_for()


def test_browse_page_and_sort_rows(console_env: ArgonEnv, proj: dict[str, Any],
                                   page: Any) -> None:
    _open_table(page, console_env, proj, "people")
    assert page.get_by_test_id("table-title").inner_text() == "public.people"
    assert page.get_by_test_id("rows-range").inner_text() == "1–50 of 120"
    grid = page.get_by_test_id("rows-grid")
    assert grid.get_by_test_id("cell-0-1").inner_text() == "person 001"
    assert grid.get_by_test_id("grid-type-2").inner_text() == "date"
    page.get_by_test_id("rows-next").click()
    page.get_by_test_id("rows-range").filter(has_text="51–100 of 120").wait_for()
    assert page.get_by_test_id("rows-grid").get_by_test_id("cell-0-0").inner_text() == "51"
    page.get_by_test_id("sort-name").click()            # ascending, back to the first page
    page.get_by_test_id("rows-range").filter(has_text="1–50 of 120").wait_for()
    page.get_by_test_id("sort-name").click()            # descending
    page.get_by_test_id("rows-grid").get_by_test_id("cell-0-1").filter(
        has_text="person 120").wait_for()
    # column types and indexes
    assert page.get_by_test_id("column-type-score").inner_text() == "numeric(6,2)"
    assert page.get_by_test_id("column-type-born").inner_text() == "date"
    indexes = page.get_by_test_id("indexes-table").inner_text()
    assert "people_pkey" in indexes and "CREATE INDEX people_name ON public.people" in indexes


def test_edit_a_cell_shows_the_update_and_changes_the_row(console_env: ArgonEnv,
                                                          proj: dict[str, Any],
                                                          page: Any) -> None:
    _open_table(page, console_env, proj, "people")
    cell = page.get_by_test_id("rows-grid").get_by_test_id("cell-4-1")   # id 5, name
    cell.dblclick()
    page.get_by_test_id("cell-input").fill("Ada O'Brien")
    page.get_by_test_id("cell-input").press("Enter")
    shown = page.get_by_test_id("cell-sql-text")
    shown.wait_for()
    assert shown.inner_text() == ('UPDATE "public"."people" SET "name" = \'Ada O\'\'Brien\' '
                                  'WHERE "id" = \'5\' RETURNING *')
    page.get_by_test_id("rows-grid").get_by_test_id("cell-4-1").filter(
        has_text="Ada O'Brien").wait_for()
    with psycopg.connect(proj["uri"]) as conn:
        assert conn.execute("SELECT name FROM people WHERE id = 5").fetchone() == ("Ada O'Brien",)
    screenshot(page, "tables")
    # a date typed as text is cast by Postgres to the column's type
    page.get_by_test_id("rows-grid").get_by_test_id("cell-4-2").dblclick()
    page.get_by_test_id("cell-input").fill("1999-12-31")
    page.get_by_test_id("cell-input").press("Enter")
    page.get_by_test_id("cell-sql-text").filter(has_text='SET "born"').wait_for()
    with psycopg.connect(proj["uri"]) as conn:
        born = conn.execute("SELECT born FROM people WHERE id = 5").fetchone()[0]
    assert str(born) == "1999-12-31"


def test_a_table_without_primary_key_is_not_editable(console_env: ArgonEnv,
                                                     proj: dict[str, Any], page: Any) -> None:
    _open_table(page, console_env, proj, "loose")
    assert "no primary key" in page.get_by_test_id("no-pk").inner_text()
    base = f"/console/projects/{proj['id']}/branches/{proj['branch']}"
    r = console_env.api(
        "PATCH", f"{base}/tables/public/loose/rows",
        json={"database": proj["db"], "key": {"a": 1}, "column": "b", "value": "two"})
    assert r.status_code == 409 and "no primary key" in r.json()["message"]
    with psycopg.connect(proj["uri"]) as conn:
        assert conn.execute("SELECT b FROM loose").fetchone() == ("one",)


@pytest.mark.parametrize(("path", "status", "text"), [
    ("/tables/public/nope", 404, "not found"),
    ("/tables/public/people/rows?sort=nope", 400, "no column"),
    ("/tables/public/people/rows?limit=100000", 400, "limit"),
])
def test_bad_table_requests(console_env: ArgonEnv, proj: dict[str, Any], path: str,
                            status: int, text: str) -> None:
    sep = "&" if "?" in path else "?"
    r = console_env.api("GET", f"/console/projects/{proj['id']}/branches/{proj['branch']}"
                               f"{path}{sep}database={proj['db']}")
    assert r.status_code == status, r.text
    assert text in r.json()["message"]


def test_diff_shows_a_column_added_on_a_branch(console_env: ArgonEnv, proj: dict[str, Any],
                                               page: Any) -> None:
    r = console_env.api("POST", f"/projects/{proj['id']}/branches",
                        json={"branch": {"name": "add-column"},
                              "endpoints": [{"type": "read_write"}]})
    assert r.status_code == 201, r.text
    child = r.json()["branch"]
    wait_operations(console_env.api, proj["id"], r.json()["operations"])
    uri = console_env.api("GET", f"/projects/{proj['id']}/connection_uri", params={
        "branch_id": child["id"], "database_name": proj["db"],
        "role_name": proj["owner"]}).json()["uri"]
    time.sleep(1.5)
    before = datetime.now(UTC)   # after the branch was made, before the new column
    time.sleep(1.5)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("ALTER TABLE people ADD COLUMN nickname varchar(40)")
    signed_in(page, console_env, f"#/projects/{proj['id']}/diff/{child['id']}")
    page.get_by_test_id("diff-database").locator(f"option[value='{proj['db']}']").wait_for(
        state="attached")
    page.get_by_test_id("diff-compare").click()
    view = page.get_by_test_id("diff-view")
    view.wait_for(timeout=120_000)
    added = view.locator("[data-testid=diff-right-line][data-kind=add]")
    assert "nickname character varying(40)" in " ".join(added.all_inner_texts())
    assert "add-column" in page.get_by_test_id("diff-right").inner_text()
    assert "main" in page.get_by_test_id("diff-left").inner_text()
    screenshot(page, "schema-diff")
    # the same branch against itself at a past time
    page.get_by_test_id("diff-mode").select_option("time")
    pick_time(page, "diff-timestamp", before.isoformat())
    page.get_by_test_id("diff-compare").click()
    page.get_by_test_id("diff-left").filter(has_text="add-column at").wait_for(timeout=120_000)
    added = page.get_by_test_id("diff-view").locator("[data-testid=diff-right-line][data-kind=add]")
    assert "nickname character varying(40)" in " ".join(added.all_inner_texts())
