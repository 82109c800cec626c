"""Console: the connection dialog's strings connect, the pooled toggle gives the pooled
door, the snippets carry the string, and passwords are revealed and reset."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from playwright.sync_api import Page

from tests.fixtures.argon_env import ArgonEnv
from tests.fixtures.common import backends_of_open_clients
from tests.integration.console.conftest import new_project, screenshot, signed_in, wait_until


@pytest.fixture(scope="module")
def project(console_env: ArgonEnv) -> Any:
    body = new_project(console_env, "connect-dialog")
    yield body
    console_env.api("DELETE", f"/projects/{body['project']['id']}")


def _api_uri(env: ArgonEnv, body: dict[str, Any], pooled: bool) -> str:
    return str(env.api("GET", f"/projects/{body['project']['id']}/connection_uri", params={
        "database_name": body["databases"][0]["name"], "role_name": body["roles"][0]["name"],
        "pooled": str(pooled).lower()}).json()["uri"])


def _shown_string(page: Any, pooled: bool) -> str:
    string = page.get_by_test_id("connect-string")
    wait_until(lambda: string.get_attribute("data-pooled") == str(pooled).lower()
               and string.inner_text().startswith("postgresql://"), what="the string")
    return string.inner_text()  # type: ignore[no-any-return]


def test_the_string_connects_and_the_pooled_toggle_gives_the_pooled_door(
        page: Page, console_env: ArgonEnv, project: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    db, role = project["databases"][0]["name"], project["roles"][0]["name"]
    signed_in(page, console_env, f"#/projects/{pid}/connect")
    masked = _shown_string(page, False)
    assert "********" in masked
    screenshot(page, "connect")
    page.get_by_test_id("connect-show-password").check()
    direct = _shown_string(page, False)
    assert direct == _api_uri(console_env, project, False)
    with psycopg.connect(direct, autocommit=True, connect_timeout=30) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (role, db)
    # Each open direct connection is its own backend.
    assert len(backends_of_open_clients(direct, 3)) == 3

    page.get_by_test_id("connect-pooled").check()
    pooled = _shown_string(page, True)
    assert pooled != direct and pooled == _api_uri(console_env, project, True)
    if "-pooler." in pooled or "-pooler." in direct:   # the Neon-style host form
        assert "-pooler." in pooled and "-pooler." not in direct
    # Through PgBouncer (transaction mode), open clients querying one after another
    # share one server backend.
    assert len(backends_of_open_clients(pooled, 3)) == 1


def test_snippets_carry_the_chosen_string_and_hide_the_password_until_asked(
        page: Page, console_env: ArgonEnv, project: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    password = project["roles"][0]["password"] or console_env.api(
        "GET", f"/projects/{pid}/branches/{project['branch']['id']}/roles/"
        f"{project['roles'][0]['name']}/reveal_password").json()["password"]
    signed_in(page, console_env, f"#/projects/{pid}/connect")
    _shown_string(page, False)
    snippet = page.get_by_test_id("snippet")
    for key in ("psql", "env", "prisma", "drizzle", "django", "sqlalchemy", "node-pg",
                "serverless"):
        page.get_by_test_id(f"snippet-tab-{key}").click()
        wait_until(lambda k=key: snippet.get_attribute("data-snippet") == k, what=key)
        assert password not in snippet.inner_text(), key
        assert "********" in snippet.inner_text(), key
    page.get_by_test_id("connect-show-password").check()
    direct = _shown_string(page, False)
    page.get_by_test_id("snippet-tab-psql").click()
    assert snippet.inner_text() == f"psql '{direct}'"
    page.get_by_test_id("snippet-tab-env").click()
    assert f"DATABASE_URL='{direct}'" in snippet.inner_text()
    assert f"PGPASSWORD='{password}'" in snippet.inner_text()
    page.get_by_test_id("snippet-tab-sqlalchemy").click()
    sqlalchemy_url = direct.replace("postgresql://", "postgresql+psycopg://")
    assert f'create_engine("{sqlalchemy_url}")' in snippet.inner_text()
    page.get_by_test_id("snippet-tab-prisma").click()
    assert "directUrl" in snippet.inner_text()


def test_reveal_then_reset_the_password(
        page: Page, console_env: ArgonEnv, project: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    old_uri = _api_uri(console_env, project, False)
    revealed = console_env.api(
        "GET", f"/projects/{pid}/branches/{project['branch']['id']}/roles/"
        f"{project['roles'][0]['name']}/reveal_password").json()["password"]
    signed_in(page, console_env, f"#/projects/{pid}/connect")
    _shown_string(page, False)
    page.get_by_test_id("role-reveal").click()
    shown = page.get_by_test_id("role-password")
    wait_until(lambda: shown.inner_text() != "", what="the revealed password")
    assert shown.inner_text() == revealed

    page.get_by_test_id("role-reset-open").click()
    page.get_by_test_id("role-reset-submit").click()
    page.get_by_test_id("role-reset").wait_for(state="detached", timeout=120_000)
    wait_until(lambda: shown.inner_text() not in ("", revealed), what="the new password")
    new_password = shown.inner_text()
    page.get_by_test_id("connect-show-password").check()
    new_uri = _shown_string(page, False)
    assert new_password in new_uri and revealed not in new_uri
    with psycopg.connect(new_uri, autocommit=True, connect_timeout=30) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(old_uri, connect_timeout=30).close()
