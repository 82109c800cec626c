"""Console: sign-in, the projects list, creating and deleting a project."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page

from tests.fixtures.argon_env import ArgonEnv
from tests.integration.console.conftest import console_url, new_project, screenshot, signed_in


def test_a_wrong_key_is_refused_and_the_bootstrap_key_signs_in(
        page: Page, console_env: ArgonEnv) -> None:
    page.goto(console_url(console_env))
    page.get_by_test_id("signin-key").fill("argon_not_a_key")
    page.get_by_test_id("signin-submit").click()
    error = page.get_by_test_id("signin-error")
    error.wait_for()
    assert "not accepted" in error.inner_text()
    screenshot(page, "sign-in")
    assert page.get_by_test_id("project-switcher").count() == 0

    page.get_by_test_id("signin-key").fill(console_env.api_key)
    page.get_by_test_id("signin-submit").click()
    default = console_env.default_project()
    page.get_by_test_id(f"project-row-{default['id']}").wait_for()
    # The key lives in this tab's sessionStorage: a reload stays signed in.
    page.reload()
    page.get_by_test_id(f"project-row-{default['id']}").wait_for()


def test_a_browser_asking_for_the_api_root_is_sent_to_the_console(console_env: ArgonEnv) -> None:
    base = f"http://127.0.0.1:{console_env.api_port}"
    r = httpx.get(base + "/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/console/"
    page = httpx.get(base + "/console/")
    assert page.status_code == 200 and "app.js" in page.text
    assert httpx.get(base + "/", headers={"Accept": "application/json"}).json()["api"] == "/api/v2"


def test_a_revoked_key_sends_the_user_back_to_sign_in(page: Page, console_env: ArgonEnv) -> None:
    made = console_env.api("POST", "/api_keys", json={"key_name": "console-test"}).json()
    page.goto(console_url(console_env))
    page.get_by_test_id("signin-key").fill(made["key"])
    page.get_by_test_id("signin-submit").click()
    page.get_by_test_id("project-switcher").wait_for()
    # the page's own first calls are done (one still in flight would see the revocation)
    page.locator("[data-testid^='project-row-']").first.wait_for()
    assert console_env.api("DELETE", f"/api_keys/{made['id']}").status_code == 200
    page.get_by_test_id("nav-projects").click()
    page.evaluate("location.hash = '#/projects?again=1'")
    page.get_by_test_id("signin-form").wait_for()
    assert "not accepted" in page.get_by_test_id("signin-error").inner_text()


def test_a_project_created_in_the_console_is_listed_with_its_choices(
        page: Page, console_env: ArgonEnv) -> None:
    signed_in(page, console_env)
    page.get_by_test_id("project-create-open").click()
    page.get_by_test_id("project-name").fill("made-in-console")
    versions = page.get_by_test_id("project-pg-version").locator("option").all_inner_texts()
    assert versions and all(v.startswith("Postgres ") for v in versions)
    chosen = int(versions[-1].split()[1])
    page.get_by_test_id("project-pg-version").select_option(str(chosen))
    page.get_by_test_id("project-region").select_option("aws-eu-central-1")
    page.get_by_test_id("project-history").select_option("604800")
    page.get_by_test_id("project-create-submit").click()
    page.get_by_test_id("project-create").wait_for(state="detached", timeout=120_000)

    made = next(p for p in console_env.api("GET", "/projects").json()["projects"]
                if p["name"] == "made-in-console")
    row = page.get_by_test_id(f"project-row-{made['id']}")
    row.wait_for()
    assert "made-in-console" in row.inner_text() and "7 d" in row.inner_text()
    assert made["pg_version"] == chosen
    assert made["region_id"] == "aws-eu-central-1"
    assert made["history_retention_seconds"] == 604800
    # The switcher offers it at once.
    assert page.get_by_test_id("project-switcher").locator(
        f"option[value='{made['id']}']").count() == 1
    screenshot(page, "projects")


def test_a_project_is_deleted_only_after_its_name_is_typed(
        page: Page, console_env: ArgonEnv) -> None:
    pid = new_project(console_env, "to-delete")["project"]["id"]
    signed_in(page, console_env)
    page.get_by_test_id(f"project-delete-{pid}").click()
    submit = page.get_by_test_id("project-delete-submit")
    assert submit.is_disabled()
    page.get_by_test_id("project-delete-input").fill("to-delet")
    assert submit.is_disabled()
    assert console_env.api("GET", f"/projects/{pid}").status_code == 200
    page.get_by_test_id("project-delete-input").fill("to-delete")
    submit.click()
    page.get_by_test_id(f"project-row-{pid}").wait_for(state="detached", timeout=120_000)
    assert console_env.api("GET", f"/projects/{pid}").status_code == 404
