"""One user's journey through the console, end to end in Chromium, as the issue's Tests
section tells it: sign in, create a project, branch it from a past time and read that
branch's rows in the SQL editor, reset it from its parent, diff the two schemas, read a
chart with real points, delete the project.  All of it under the console's
Content-Security-Policy (scripts from Argon only), which a violation would fail."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.fixtures.argon_env import ArgonEnv, running_env
from tests.integration.console.conftest import (
    console_url,
    pick_time,
    screenshot,
    signed_in,
    submit_dialog,
    type_sql,
    wait_until,
)

pytestmark = pytest.mark.skipif(__import__("os").geteuid() != 0,
                                reason="Argon runs Postgres as the argon account: needs root")


@pytest.fixture(scope="module")
def journey_env() -> Iterator[ArgonEnv]:
    # one monitoring sample a second, so the charts have points within the test
    with running_env("journey", ["--monitoring-interval", "1"]) as env:
        yield env


def _go(page: Any, hash_: str, page_name: str) -> None:
    """Follow an in-app link (the hash router), as the sidebar does."""
    page.evaluate("h => { location.hash = h; }", hash_)
    page.get_by_test_id(f"page-{page_name}").wait_for()


def _run_sql(page: Any, query: str) -> Any:
    """Types ``query`` into the SQL editor, runs it, and returns the status line."""
    before = page.get_by_test_id("sql-history").inner_text()
    type_sql(page, query)
    page.get_by_test_id("sql-run").click()
    wait_until(lambda: page.get_by_test_id("sql-run").is_enabled()
               and page.get_by_test_id("sql-history").inner_text() != before, 120,
               f"the result of {query!r}")
    assert not page.get_by_test_id("sql-error").count(), page.get_by_test_id("sql-error").inner_text()
    return page.get_by_test_id("sql-status").inner_text()


def _column(page: Any, col: int = 0) -> list[str]:
    grid = page.get_by_test_id("result-grid")
    return [c.inner_text() for c in grid.locator(f'[data-testid^="cell-"][data-testid$="-{col}"]').all()]


def test_a_user_journey_through_the_console(journey_env: ArgonEnv, page: Any) -> None:
    env = journey_env
    # The console's pages come with a policy that allows Argon's own scripts only.
    r = httpx.get(console_url(env))
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    assert "unsafe-eval" not in csp and "http" not in csp
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text)
            if "Content Security Policy" in m.text else None)

    # Sign in, create a project.
    signed_in(page, env)
    page.get_by_test_id("project-create-open").click()
    page.get_by_test_id("project-name").fill("journey")
    page.get_by_test_id("project-create-submit").click()
    page.get_by_test_id("project-create").wait_for(state="detached", timeout=120_000)
    project = next(p for p in env.api("GET", "/projects").json()["projects"]
                   if p["name"] == "journey")
    pid = project["id"]
    page.get_by_test_id(f"project-row-{pid}").wait_for()
    main = env.api("GET", f"/projects/{pid}/branches").json()["branches"][0]
    role = env.api("GET", f"/projects/{pid}/branches/{main['id']}/roles").json()["roles"][0]["name"]
    uri = env.api("GET", f"/projects/{pid}/connection_uri", params={
        "database_name": "neondb", "role_name": role}).json()["uri"]

    # Rows written before and after a moment, from an ordinary client.
    with env.connect(uri) as conn:
        conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, w text)")
        conn.execute("INSERT INTO notes (w) VALUES ('before')")
        time.sleep(1.2)
        moment = datetime.now(UTC).replace(microsecond=0).isoformat()
        time.sleep(1.2)
        conn.execute("INSERT INTO notes (w) VALUES ('after')")

    # A branch from that moment, made on the Branches page.
    _go(page, f"#/projects/{pid}/branches", "branches")
    page.get_by_test_id(f"branch-row-{main['id']}").wait_for()
    page.get_by_test_id("branch-create-open").click()
    page.get_by_test_id("branch-new-name").fill("at-moment")
    page.get_by_test_id("branch-new-parent").select_option(main["id"])
    page.get_by_test_id("branch-new-from-time").check()
    pick_time(page, "branch-new-time", moment)
    submit_dialog(page, "branch-create")
    child = next(b for b in env.api("GET", f"/projects/{pid}/branches").json()["branches"]
                 if b["name"] == "at-moment")
    row = page.get_by_test_id(f"branch-row-{child['id']}")
    row.wait_for()
    assert row.get_attribute("data-parent") == main["id"]

    # Its rows, read in the SQL editor: only what was there at that moment.
    _go(page, f"#/projects/{pid}/sql/{child['id']}", "sql")
    page.get_by_test_id("sql-role-picker").locator(f"option[value='{role}']").wait_for(
        state="attached")
    assert "1 row" in _run_sql(page, "SELECT w FROM notes ORDER BY id")
    assert _column(page) == ["before"]
    screenshot(page, "journey-sql")

    # Reset it from its parent: it gets the parent's newer row.
    _go(page, f"#/projects/{pid}/branches", "branches")
    page.get_by_test_id(f"branch-row-{child['id']}").click()
    wait_until(lambda: page.get_by_test_id("detail-id").inner_text() == child["id"],
               what="the branch detail")
    page.get_by_test_id("branch-reset-open").click()
    submit_dialog(page, "branch-reset")
    _go(page, f"#/projects/{pid}/sql/{child['id']}", "sql")
    page.get_by_test_id("sql-role-picker").locator(f"option[value='{role}']").wait_for(
        state="attached")
    _run_sql(page, "SELECT w FROM notes ORDER BY id")
    assert _column(page) == ["before", "after"]

    # Change the branch's schema from the editor, then diff it against its parent.
    _run_sql(page, "ALTER TABLE notes ADD COLUMN tag varchar(12)")
    _go(page, f"#/projects/{pid}/diff/{child['id']}", "diff")
    page.get_by_test_id("diff-database").locator("option[value='neondb']").wait_for(
        state="attached")
    page.get_by_test_id("diff-compare").click()
    view = page.get_by_test_id("diff-view")
    view.wait_for(timeout=120_000)
    added = view.locator("[data-testid=diff-right-line][data-kind=add]")
    assert "tag character varying(12)" in " ".join(added.all_inner_texts())
    assert "at-moment" in page.get_by_test_id("diff-right").inner_text()

    # A chart with real points: the branch's compute, sampled while it ran.
    _go(page, f"#/projects/{pid}/monitoring/{child['id']}", "monitoring")
    chart = page.get_by_test_id("chart-memory")
    chart.wait_for()
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=chart-memory]')"
        ".dataset.points) >= 3", timeout=60_000)
    assert chart.locator("canvas").count() == 1
    endpoint = page.get_by_test_id("monitoring-endpoint").input_value()
    samples = env.api("GET", f"/console/projects/{pid}/endpoints/{endpoint}/metrics").json()[
        "samples"]
    assert len([s for s in samples if (s["memory_bytes"] or 0) > 1_000_000]) >= 3
    assert "MiB" in page.get_by_test_id("chart-memory-now").inner_text()
    screenshot(page, "journey-monitoring")

    # Delete the project, confirming with its name.
    _go(page, "#/projects", "projects")
    page.get_by_test_id(f"project-delete-{pid}").click()
    page.get_by_test_id("project-delete-input").fill("journey")
    page.get_by_test_id("project-delete-submit").click()
    page.get_by_test_id(f"project-row-{pid}").wait_for(state="detached", timeout=120_000)
    assert env.api("GET", f"/projects/{pid}").status_code == 404
    assert violations == []
