from __future__ import annotations

import pytest

from argon.control import ids, validation
from argon.control.hosts import connection_uri, endpoint_host
from argon.errors import InvalidInput
from argon.settings import Settings
from pathlib import Path


def test_ids_have_neon_formats() -> None:
    for _ in range(50):
        assert ids.PROJECT_ID_RE.match(ids.project_id())
        assert ids.BRANCH_ID_RE.match(ids.branch_id())
        assert ids.ENDPOINT_ID_RE.match(ids.endpoint_id())
    assert ids.role_password().startswith("npg_")
    key = ids.api_key_secret()
    assert key.startswith("napi_") and len(key) == 69   # Neon's format


@pytest.mark.parametrize("value", [0, 86400, 2592000])
def test_retention_accepts_the_window(value: int) -> None:
    assert validation.retention(value) == value


@pytest.mark.parametrize("value", [-1, 2592001, True, "1", 1.5])
def test_retention_rejects_out_of_range_and_wrong_types(value: object) -> None:
    with pytest.raises(InvalidInput, match="history_retention_seconds"):
        validation.retention(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-2, 604801, False])
def test_suspend_timeout_rejects(value: object) -> None:
    with pytest.raises(InvalidInput, match="suspend_timeout_seconds"):
        validation.suspend_timeout(value)  # type: ignore[arg-type]


def test_cu_range_rules() -> None:
    assert validation.cu_range(0.25, 2) == (0.25, 2.0)
    with pytest.raises(InvalidInput, match="min_cu"):
        validation.cu_range(0.1, 1)
    with pytest.raises(InvalidInput, match="must not exceed"):
        validation.cu_range(2, 1)
    with pytest.raises(InvalidInput, match="multiple of 0.25"):
        validation.cu_range(0.3, 1)


@pytest.mark.parametrize("name", ["", "   ", "a" * 257, "bad\x00name", "tab\tname"])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        validation.name(name, "branch name")


def test_branch_names_may_contain_slashes_and_unicode() -> None:
    assert validation.name("preview/pr-12", "branch name") == "preview/pr-12"
    assert validation.name("ветка-ü", "branch name") == "ветка-ü"


def test_pg_identifier_rules() -> None:
    with pytest.raises(InvalidInput, match="pg_"):
        validation.pg_identifier("pg_evil", "role name")
    with pytest.raises(InvalidInput, match="63"):
        validation.pg_identifier("x" * 64, "role name")


def test_pg_settings_validation() -> None:
    assert validation.pg_settings({"work_mem": "8MB", "default_statistics_target": 3}) == {
        "work_mem": "8MB", "default_statistics_target": "3"}
    with pytest.raises(InvalidInput):
        validation.pg_settings({"bad key": "1"})
    with pytest.raises(InvalidInput):
        validation.pg_settings({"k": "line\nbreak"})


def test_hosts_local_and_domain_modes() -> None:
    local = Settings(home=Path("/x"))
    assert endpoint_host(local, "ep-a-b-12345678", 41234) == "127.0.0.1:41234"
    dom = Settings(home=Path("/x"), domain="db.example.com", pg_port=5432)
    assert endpoint_host(dom, "ep-a-b-12345678", None) == "ep-a-b-12345678.db.example.com"
    assert endpoint_host(dom, "ep-a-b-12345678", None, pooled=True) == \
        "ep-a-b-12345678-pooler.db.example.com"


def test_connection_uri_quotes_and_has_neon_params() -> None:
    uri = connection_uri("127.0.0.1:5000", "us@r", "p/w", "my db")
    assert uri.connection_uri == ("postgresql://us%40r:p%2Fw@127.0.0.1:5000/my%20db"
                                  "?sslmode=require&channel_binding=require")
    assert uri.connection_parameters["port"] == "5000"
