"""Issue 9 item 7 (pure parts): ``project=`` as Neon's older ``endpoint=`` in the password
form, and the startup parameters sent on to a pooled endpoint (Neon's proxy's few)."""

from __future__ import annotations

from argon.proxy.routing import compute_startup, split_password_form


def test_project_is_the_older_spelling_in_the_password_form() -> None:
    assert split_password_form("project=ep-a;pw;x") == ("ep-a", "pw;x")
    assert split_password_form("project=ep-a-pooler$pw") == ("ep-a-pooler", "pw")
    assert split_password_form("endpoint=ep-a;pw") == ("ep-a", "pw")
    assert split_password_form("projects=ep-a;pw") is None


def test_pooled_startup_keeps_neons_parameters_only() -> None:
    params = {"user": "u", "database": "d", "application_name": "app",
              "client_encoding": "UTF8", "options": "-c TimeZone=UTC",
              "search_path": "x", "lock_timeout": "1s", "extra_float_digits": "3"}
    assert compute_startup(params, pooled=True) == {
        "user": "u", "database": "d", "application_name": "app",
        "client_encoding": "UTF8", "options": "-c TimeZone=UTC"}
    assert compute_startup(params, pooled=False) == params
