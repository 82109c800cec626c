"""Console: project settings and computes; every change is read back through the API."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.fixtures.argon_env import ArgonEnv
from tests.integration.console.conftest import new_project, screenshot, signed_in, wait_until


@pytest.fixture
def project(console_env: ArgonEnv) -> Any:
    body = new_project(console_env, "settings-page")
    yield body
    console_env.api("DELETE", f"/projects/{body['project']['id']}")


def _get(env: ArgonEnv, pid: str) -> dict[str, Any]:
    return env.api("GET", f"/projects/{pid}").json()["project"]  # type: ignore[no-any-return]


def _saved(page: Any) -> None:
    page.get_by_test_id("toast").filter(has_text="Settings saved").wait_for()


def test_settings_saved_in_the_console_are_the_projects_settings(
        page: Page, console_env: ArgonEnv, project: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    signed_in(page, console_env, f"#/projects/{pid}/settings")
    page.get_by_test_id("settings-name").fill("settings-renamed")
    page.get_by_test_id("settings-history-hours").fill("12")
    page.get_by_test_id("settings-suspend").select_option("300")
    page.get_by_test_id("settings-min-cu").select_option("0.5")
    page.get_by_test_id("settings-max-cu").select_option("2")
    page.get_by_test_id("settings-save").click()
    _saved(page)
    screenshot(page, "settings")

    got = _get(console_env, pid)
    assert got["name"] == "settings-renamed"
    assert got["history_retention_seconds"] == 12 * 3600
    des = got["default_endpoint_settings"]
    assert (des["suspend_timeout_seconds"], des["autoscaling_limit_min_cu"],
            des["autoscaling_limit_max_cu"]) == (300, 0.5, 2)
    page.reload()
    assert page.get_by_test_id("settings-name").input_value() == "settings-renamed"
    assert page.get_by_test_id("settings-history-hours").input_value() == "12"
    assert page.get_by_test_id("settings-suspend").input_value() == "300"


def test_a_minimum_above_the_maximum_is_refused_before_saving(
        page: Page, console_env: ArgonEnv, project: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    signed_in(page, console_env, f"#/projects/{pid}/settings")
    page.get_by_test_id("settings-min-cu").select_option("4")
    page.get_by_test_id("settings-max-cu").select_option("1")
    page.get_by_test_id("settings-save").click()
    page.get_by_test_id("toast-error").filter(has_text="minimum").wait_for()
    assert _get(console_env, pid)["default_endpoint_settings"]["autoscaling_limit_min_cu"] != 4


def test_logical_replication_is_turned_on_once_after_the_warning(
        page: Page, console_env: ArgonEnv, project: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    signed_in(page, console_env, f"#/projects/{pid}/settings")
    assert "cannot be turned off" in page.get_by_test_id("logical-replication-warning").inner_text()
    box = page.get_by_test_id("settings-logical-replication")
    assert not box.is_checked() and box.is_enabled()
    box.check()
    page.get_by_test_id("settings-save").click()
    page.get_by_test_id("logical-confirm-submit").click()
    _saved(page)
    assert _get(console_env, pid)["settings"]["enable_logical_replication"] is True
    box = page.get_by_test_id("settings-logical-replication")
    wait_until(lambda: box.is_checked() and box.is_disabled(), what="a locked toggle")


def test_a_compute_is_suspended_started_and_resized_from_the_list(
        page: Page, console_env: ArgonEnv, project: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    ep = project["endpoints"][0]["id"]

    def state() -> str:
        return str(console_env.api("GET", f"/projects/{pid}/endpoints/{ep}").json()[
            "endpoint"]["current_state"])

    signed_in(page, console_env, f"#/projects/{pid}/settings")
    page.get_by_test_id(f"endpoint-row-{ep}").wait_for()
    if state() != "active":
        page.get_by_test_id(f"endpoint-start-{ep}").click()
        wait_until(lambda: state() == "active", what="the compute to start")
    page.get_by_test_id(f"endpoint-suspend-btn-{ep}").click()
    wait_until(lambda: state() == "idle", what="the compute to suspend")
    wait_until(lambda: page.get_by_test_id(f"endpoint-state-{ep}").inner_text() == "idle",
               what="the list to show idle")
    page.get_by_test_id(f"endpoint-start-{ep}").click()
    wait_until(lambda: state() == "active", what="the compute to start")
    wait_until(lambda: page.get_by_test_id(f"endpoint-state-{ep}").inner_text() == "active",
               what="the list to show active")

    page.get_by_test_id(f"endpoint-max-cu-{ep}").select_option("2")
    page.get_by_test_id(f"endpoint-suspend-{ep}").select_option("900")
    page.get_by_test_id(f"endpoint-save-{ep}").click()
    page.get_by_test_id("toast").filter(has_text=f"{ep} saved").wait_for()
    got = console_env.api("GET", f"/projects/{pid}/endpoints/{ep}").json()["endpoint"]
    assert got["autoscaling_limit_max_cu"] == 2 and got["suspend_timeout_seconds"] == 900


def test_the_operations_log_lists_the_projects_operations_with_durations(
        page: Page, console_env: ArgonEnv, project: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    ops = console_env.api("GET", f"/projects/{pid}/operations").json()["operations"]
    assert ops
    signed_in(page, console_env, f"#/projects/{pid}/operations")
    for op in ops:
        row = page.get_by_test_id(f"operation-row-{op['id']}")
        row.wait_for()
        assert row.get_attribute("data-action") == op["action"]
        assert row.get_attribute("data-status") == op["status"]
        assert row.get_by_test_id("operation-duration").inner_text() != "—"
    screenshot(page, "operations")
    page.get_by_test_id("operations-failed-only").check()
    failed = [o for o in ops if o["status"] in ("failed", "error") or o["failures_count"]]
    assert page.locator("[data-testid^=operation-row-]").count() == len(failed)
