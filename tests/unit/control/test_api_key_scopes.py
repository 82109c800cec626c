"""API key rules over real control services on a temporary home (no computes): last use
is written at most once a minute, and a project-scoped key is held to its project."""

from __future__ import annotations

from contextvars import copy_context
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from argon.control import build_services, key_scope
from argon.control.organization import ORG_ID
from argon.errors import Forbidden, InvalidInput, NotFound
from argon.settings import Settings


@pytest.fixture
def services(argon_tmp: Path) -> Any:
    return build_services(Settings(home=argon_tmp / "home"))


def test_last_use_is_written_once_a_minute(services: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    key, secret = services.api_keys.create("busy")
    updates: list[str] = []
    engine = services.ctx.engine

    def count(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            updates.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    clock = [1000.0]
    monkeypatch.setattr("argon.control.api_keys.time.monotonic", lambda: clock[0])
    for _ in range(50):
        assert services.api_keys.authenticate(secret, "10.0.0.7") is not None
    assert len(updates) == 1
    clock[0] += 61
    assert services.api_keys.authenticate(secret, "10.0.0.8") is not None
    assert len(updates) == 2
    event.remove(engine, "before_cursor_execute", count)
    listed = {k.id: k for k in services.api_keys.list()}
    assert listed[key.id].last_used_from_addr == "10.0.0.8"
    assert listed[key.id].last_used_at is not None


def test_a_project_scoped_key_needs_an_organization_and_a_real_project(services: Any) -> None:
    with pytest.raises(InvalidInput):
        services.api_keys.create("x", project_id="some-project-1")
    with pytest.raises(NotFound):
        services.api_keys.create("x", org_id=ORG_ID, project_id="some-project-1")
    with pytest.raises(NotFound):
        services.api_keys.create("x", org_id="org-other-1")


def test_the_scope_of_the_bound_key_decides(services: Any) -> None:
    key, _ = services.api_keys.create("ci", org_id=ORG_ID)
    scoped = type(key)(**{**key.__dict__, "project_id": "proj-a-1"})

    def as_scoped() -> None:
        key_scope.bind(scoped)
        key_scope.check_project("proj-a-1")
        with pytest.raises(NotFound):
            key_scope.check_project("proj-b-2")
        with pytest.raises(Forbidden):
            services.api_keys.list(ORG_ID)
        assert services.projects.list().items == []   # proj-a-1 does not exist here

    copy_context().run(as_scoped)
    key_scope.check_project("proj-b-2")   # unbound (internal callers): no restriction
    assert key_scope.current() is None
