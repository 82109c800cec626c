"""Console tests: a real Argon (``console_env``, shared by the session) driven through
Debian's Chromium (``page`` from tests/fixtures/browser.py).

``signed_in(page, env)`` opens the console and signs in with the bootstrap key, as a
user does; the other helpers here wait for what the pages show.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.argon_env import ArgonEnv, running_env, wait_operations

__all__ = ["console_url", "signed_in", "wait_operations", "new_project", "pick_time",
           "screenshot", "wait_until", "type_sql", "sql_text", "submit_dialog"]

# Screenshots of the main pages, kept by every run (the README shows the best of them).
SHOTS = Path(__file__).resolve().parents[3] / "test-output" / "console"


@pytest.fixture(scope="session")
def console_env() -> Iterator[ArgonEnv]:
    with running_env("console") as env:
        yield env


def console_url(env: ArgonEnv, hash_: str = "") -> str:
    return f"http://127.0.0.1:{env.api_port}/console/{hash_}"


def signed_in(page: Any, env: ArgonEnv, hash_: str = "#/projects") -> Any:
    """The console at ``hash_``, signed in with the bootstrap key through the form."""
    page.goto(console_url(env, hash_))
    page.get_by_test_id("signin-key").fill(env.api_key)
    page.get_by_test_id("signin-submit").click()
    page.get_by_test_id("project-switcher").wait_for()
    page.get_by_test_id("page-" + _page_of(hash_)).wait_for()
    return page


def _page_of(hash_: str) -> str:
    parts = [p for p in hash_.lstrip("#").split("?")[0].split("/") if p]
    return parts[2] if len(parts) > 2 else ("branches" if len(parts) == 2 else "projects")


def new_project(env: ArgonEnv, name: str, **fields: Any) -> dict[str, Any]:
    """A project made through the API (what a test needs that is not under test)."""
    r = env.api("POST", "/projects", json={"project": {"name": name, **fields}})
    assert r.status_code == 201, r.text
    body = r.json()
    wait_operations(env.api, body["project"]["id"], body["operations"])
    return body  # type: ignore[no-any-return]


def pick_time(page: Any, testid: str, iso: str) -> None:
    """Set a ``datetime-local`` input to the UTC instant ``iso`` in the browser's own zone."""
    local = page.evaluate(
        """iso => { const d = new Date(iso); const p = n => String(n).padStart(2, '0');
        return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T` +
               `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`; }""", iso)
    page.get_by_test_id(testid).fill(local)


def submit_dialog(page: Any, testid: str, timeout: float = 180) -> None:
    """Submits a dialog and waits until it closes; an error it shows fails the test."""
    page.get_by_test_id(f"{testid}-submit").click()
    dialog, error = page.get_by_test_id(testid), page.get_by_test_id(f"{testid}-error")
    deadline = time.monotonic() + timeout
    while dialog.count() and time.monotonic() < deadline:
        if error.count() and error.is_visible():
            raise AssertionError(f"{testid}: {error.inner_text()}")
        time.sleep(0.1)
    assert not dialog.count(), f"{testid} did not close"


def type_sql(page: Any, text: str) -> None:
    """Replace the SQL editor's text (CodeMirror) by ``text``: a click into the editor,
    select all, and the text typed as keys (kept exact: no auto-indent on the way)."""
    editor = page.get_by_test_id("sql-editor")
    # The page may still be wiring CodeMirror up when the first keys arrive (the editor
    # then keeps its default text): wait for it to hold the focus, and try again once
    # if the keys still went nowhere.
    for _attempt in range(3):
        editor.locator(".CodeMirror-code").click()
        page.locator("[data-testid=sql-editor].CodeMirror-focused").wait_for()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(text)
        if sql_text(page) == text:
            return
        page.wait_for_timeout(200)
    assert sql_text(page) == text


def sql_text(page: Any) -> str:
    """What the SQL editor holds now."""
    return str(page.evaluate(
        "() => document.querySelector('[data-testid=sql-editor]').CodeMirror.getValue()"))


def wait_until(check: Any, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def screenshot(page: Any, name: str) -> Path:
    """Saves what the page shows as test-output/console/<name>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
