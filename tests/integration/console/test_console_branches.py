"""Console: the branch tree and every branch action, checked through the API and the
branches' own data."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from playwright.sync_api import Page

from tests.fixtures.argon_env import ArgonEnv
from tests.integration.console.bulk import add_metadata_branches
from tests.integration.console.conftest import (
    new_project,
    pick_time,
    screenshot,
    signed_in,
    submit_dialog,
    wait_until,
)


class Project:
    """A project made for one test, with what its checks need."""

    def __init__(self, env: ArgonEnv, name: str) -> None:
        self.env = env
        body = new_project(env, name)
        self.id = body["project"]["id"]
        self.main = body["branch"]["id"]
        self.db = body["databases"][0]["name"]
        self.role = body["roles"][0]["name"]

    def branch(self, ref: str) -> dict[str, Any]:
        return next(b for b in self.env.api("GET", f"/projects/{self.id}/branches").json()[
            "branches"] if ref in (b["id"], b["name"]))

    def sql(self, branch_id: str, query: str) -> list[tuple[Any, ...]]:
        uri = self.env.api("GET", f"/projects/{self.id}/connection_uri", params={
            "branch_id": branch_id, "database_name": self.db, "role_name": self.role}).json()["uri"]
        with self.env.connect(uri) as conn:
            cur = conn.execute(query)
            return cur.fetchall() if cur.description else []

    def words(self, branch_id: str) -> list[str]:
        return [r[0] for r in self.sql(branch_id, "SELECT w FROM t ORDER BY id")]

    def delete(self) -> None:
        self.env.api("DELETE", f"/projects/{self.id}")


def _moment_between_writes(p: Project, branch_id: str, before: str, after: str) -> str:
    """Writes ``before``, then a whole second later names an instant, then writes
    ``after``: the instant (to the second, as the time picker shows it) lies between."""
    p.sql(branch_id, f"INSERT INTO t (w) VALUES ('{before}')")
    time.sleep(1.2)
    moment = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.2)
    p.sql(branch_id, f"INSERT INTO t (w) VALUES ('{after}')")
    return moment.isoformat()


def _open(page: Any, p: Project, branch_id: str) -> None:
    page.get_by_test_id(f"branch-row-{branch_id}").click()
    wait_until(lambda: page.get_by_test_id("detail-id").inner_text() == branch_id,
               what="the branch detail")


_submit = submit_dialog


def test_a_branch_from_a_past_time_appears_under_its_parent_with_that_data(
        page: Page, console_env: ArgonEnv) -> None:
    p = Project(console_env, "tree-at-time")
    try:
        p.sql(p.main, "CREATE TABLE t (id serial PRIMARY KEY, w text)")
        moment = _moment_between_writes(p, p.main, "before", "after")
        signed_in(page, console_env, f"#/projects/{p.id}/branches")
        page.get_by_test_id(f"branch-row-{p.main}").wait_for()
        page.get_by_test_id("branch-create-open").click()
        page.get_by_test_id("branch-new-name").fill("at-moment")
        page.get_by_test_id("branch-new-parent").select_option(p.main)
        page.get_by_test_id("branch-new-from-time").check()
        pick_time(page, "branch-new-time", moment)
        _submit(page, "branch-create")

        made = p.branch("at-moment")
        row = page.get_by_test_id(f"branch-row-{made['id']}")
        row.wait_for()
        assert row.get_attribute("data-parent") == p.main
        assert row.get_attribute("data-depth") == "1"
        ids = page.locator("[data-testid=branch-tree] [data-id]").evaluate_all(
            "rs => rs.map(r => r.dataset.id)")
        assert ids.index(made["id"]) > ids.index(p.main)
        assert made["parent_timestamp"] is not None
        screenshot(page, "branches")
        assert p.words(made["id"]) == ["before"]
        assert p.words(p.main) == ["before", "after"]

        # Sizes for the whole tree come in one console call (Neon's branch has no history
        # size); the parent's WAL archive and snapshots count as history.
        sizes = {s["branch_id"]: s for s in console_env.api(
            "GET", f"/console/projects/{p.id}/branch_sizes").json()["branches"]}
        assert set(sizes) == {p.main, made["id"]}
        assert sizes[p.main]["history_size"] > 0
        assert sizes[p.main]["logical_size"] > 0
        assert httpx.get(f"{console_env.api_url}/console/projects/{p.id}/branch_sizes"
                         ).status_code == 401
    finally:
        p.delete()


def test_rename_default_reset_restore_and_delete_from_the_tree(
        page: Page, console_env: ArgonEnv) -> None:
    p = Project(console_env, "tree-actions")
    try:
        p.sql(p.main, "CREATE TABLE t (id serial PRIMARY KEY, w text)")
        p.sql(p.main, "INSERT INTO t (w) VALUES ('m1')")
        child = console_env.api("POST", f"/projects/{p.id}/branches", json={
            "branch": {"name": "child", "parent_id": p.main},
            "endpoints": [{"type": "read_write"}]}).json()["branch"]["id"]
        p.sql(p.main, "INSERT INTO t (w) VALUES ('m2')")
        signed_in(page, console_env, f"#/projects/{p.id}/branches")
        page.get_by_test_id(f"branch-row-{child}").wait_for()

        # Rename.
        _open(page, p, child)
        page.get_by_test_id("branch-rename-open").click()
        page.get_by_test_id("branch-rename-name").fill("feature-x")
        _submit(page, "branch-rename")
        wait_until(lambda: "feature-x" in page.get_by_test_id(f"branch-row-{child}").inner_text(),
                   what="the new name in the tree")
        assert p.branch(child)["name"] == "feature-x"

        # Set as default, then back.
        page.get_by_test_id("branch-set-default").click()
        page.get_by_test_id(f"branch-row-{child}").get_by_test_id("branch-default").wait_for()
        assert p.branch(child)["default"] is True
        _open(page, p, p.main)
        page.get_by_test_id("branch-set-default").click()
        page.get_by_test_id(f"branch-row-{p.main}").get_by_test_id("branch-default").wait_for()
        assert p.branch(p.main)["default"] is True and p.branch(child)["default"] is False

        # Reset from parent: the child gets the parent's newer row.
        assert p.words(child) == ["m1"]
        _open(page, p, child)
        page.get_by_test_id("branch-reset-open").click()
        _submit(page, "branch-reset")
        assert p.words(child) == ["m1", "m2"]
        assert p.branch(child)["last_reset_at"] is not None

        # Restore from its own past, keeping the current state under a name.
        moment = _moment_between_writes(p, child, "c1", "c2")
        page.get_by_test_id(f"branch-row-{child}").wait_for()
        _open(page, p, child)
        page.get_by_test_id("branch-restore-open").click()
        page.get_by_test_id("branch-restore-source").select_option(child)
        page.get_by_test_id("branch-restore-from-time").check()
        pick_time(page, "branch-restore-time", moment)
        page.get_by_test_id("branch-restore-preserve").fill("feature-x-before-restore")
        screenshot(page, "branch-restore")
        _submit(page, "branch-restore")
        kept = p.branch("feature-x-before-restore")
        kept_row = page.get_by_test_id(f"branch-row-{kept['id']}")
        kept_row.wait_for()
        assert kept_row.get_attribute("data-parent") == (kept["parent_id"] or "")
        assert p.words(child) == ["m1", "m2", "c1"]
        # The kept state has no compute of its own (as on Neon): give it one to read it.
        ep = console_env.api("POST", f"/projects/{p.id}/endpoints", json={
            "endpoint": {"branch_id": kept["id"], "type": "read_write"}})
        assert ep.status_code == 201, ep.text
        assert p.words(kept["id"]) == ["m1", "m2", "c1", "c2"]

        # Delete a leaf of the two (a branch with children is refused, as on Neon).
        branches = console_env.api("GET", f"/projects/{p.id}/branches").json()["branches"]
        leaf = kept["id"] if not any(b["parent_id"] == kept["id"] for b in branches) else child
        _open(page, p, leaf)
        page.get_by_test_id("branch-delete-open").click()
        _submit(page, "branch-delete")
        page.get_by_test_id(f"branch-row-{leaf}").wait_for(state="detached")
        assert console_env.api("GET", f"/projects/{p.id}/branches/{leaf}").status_code == 404
    finally:
        p.delete()


def test_a_refused_action_shows_neons_message_and_changes_nothing(
        page: Page, console_env: ArgonEnv) -> None:
    p = Project(console_env, "tree-refused")
    try:
        signed_in(page, console_env, f"#/projects/{p.id}/branches")
        _open(page, p, p.main)
        page.get_by_test_id("branch-restore-open").click()
        page.get_by_test_id("branch-restore-source").select_option(p.main)
        page.get_by_test_id("branch-restore-from-time").check()
        _submit_error = page.get_by_test_id("branch-restore-error")
        page.get_by_test_id("branch-restore-submit").click()
        _submit_error.wait_for()
        assert "preserve_under_name" in _submit_error.inner_text()
        assert len(console_env.api("GET", f"/projects/{p.id}/branches").json()["branches"]) == 1
    finally:
        p.delete()


def test_a_thousand_branches_are_all_in_the_tree(page: Page, console_env: ArgonEnv) -> None:
    p = Project(console_env, "tree-thousand")
    try:
        made = add_metadata_branches(console_env, p.id, p.main, 1000)
        signed_in(page, console_env, f"#/projects/{p.id}/branches")
        page.get_by_test_id(f"branch-row-{made[-1]}").wait_for()
        assert page.locator("[data-testid=branch-tree] [data-id]").count() == 1001
        assert page.get_by_test_id("branch-count").inner_text() == "1001 branches"
        screenshot(page, "branches-1000")
        assert page.locator("[data-testid=branch-tree] [data-testid=branch-protected]").count() == 11
        # made[0] is a child of main, made[1] a child of made[0].
        first, second = (page.get_by_test_id(f"branch-row-{b}") for b in made[:2])
        assert first.get_attribute("data-parent") == p.main
        assert second.get_attribute("data-parent") == made[0]
        assert second.get_attribute("data-depth") == "2"
        # The filter narrows the tree without asking the server.
        page.get_by_test_id("branch-search").fill("bulk-0999")
        assert page.locator("[data-testid=branch-tree] [data-id]:not([hidden])").count() == 1
    finally:
        p.delete()


def test_branches_from_an_lsn_and_schema_only(page: Page, console_env: ArgonEnv) -> None:
    p = Project(console_env, "tree-lsn")
    try:
        p.sql(p.main, "CREATE TABLE t (id serial PRIMARY KEY, w text)")
        p.sql(p.main, "INSERT INTO t (w) VALUES ('a')")
        lsn = p.sql(p.main, "SELECT pg_current_wal_insert_lsn()::text")[0][0]
        p.sql(p.main, "INSERT INTO t (w) VALUES ('b')")
        signed_in(page, console_env, f"#/projects/{p.id}/branches")
        page.get_by_test_id(f"branch-row-{p.main}").wait_for()

        page.get_by_test_id("branch-create-open").click()
        page.get_by_test_id("branch-new-name").fill("at-lsn")
        page.get_by_test_id("branch-new-from-lsn").check()
        page.get_by_test_id("branch-new-lsn").fill(lsn)
        _submit(page, "branch-create")
        at_lsn = p.branch("at-lsn")
        page.get_by_test_id(f"branch-row-{at_lsn['id']}").wait_for()
        assert at_lsn["parent_lsn"] == lsn
        assert p.words(at_lsn["id"]) == ["a"]

        # Protection and expiry, set in the edit dialog, show in the tree.
        _open(page, p, at_lsn["id"])
        page.get_by_test_id("branch-rename-open").click()
        page.get_by_test_id("branch-edit-protected").check()
        expiry = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
        pick_time(page, "branch-edit-expires", expiry.isoformat())
        _submit(page, "branch-rename")
        row = page.get_by_test_id(f"branch-row-{at_lsn['id']}")
        row.get_by_test_id("branch-protected").wait_for()
        row.get_by_test_id("branch-expires").wait_for()
        got = p.branch(at_lsn["id"])
        assert got["protected"] is True
        assert datetime.fromisoformat(got["expires_at"].replace("Z", "+00:00")) == expiry
        assert page.get_by_test_id("branch-delete-open").is_enabled()

        page.get_by_test_id("branch-create-open").click()
        page.get_by_test_id("branch-new-name").fill("shape-only")
        page.get_by_test_id("branch-new-parent").select_option(p.main)
        page.get_by_test_id("branch-new-schema-only").check()
        _submit(page, "branch-create")
        shape = p.branch("shape-only")
        page.get_by_test_id(f"branch-row-{shape['id']}").wait_for()
        assert shape["init_source"] == "schema-only"
        assert p.words(shape["id"]) == []

        # A malformed LSN is refused in the dialog, before any request.
        page.get_by_test_id("branch-create-open").click()
        page.get_by_test_id("branch-new-from-lsn").check()
        page.get_by_test_id("branch-new-lsn").fill("not-an-lsn")
        page.get_by_test_id("branch-create-submit").click()
        assert "LSN" in page.get_by_test_id("branch-create-error").inner_text()
        page.get_by_test_id("branch-create-cancel").click()
        assert len(console_env.api("GET", f"/projects/{p.id}/branches").json()["branches"]) == 3
    finally:
        p.delete()
