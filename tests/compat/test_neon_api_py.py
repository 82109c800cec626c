"""The ``neon-api`` Python SDK (PyPI) through a project's life cycle.

The SDK parses every answer into its own pydantic models, so a missing or mistyped field
fails here as it would for its users.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import psycopg
import pytest
from neon_api import NeonAPI
from neon_api.exceptions import NeonAPIError

from tests.compat.conftest import RecordedApi

pytestmark = pytest.mark.timeout(600)
T = TypeVar("T")


def _retry_locked(fn: Callable[[], T]) -> T:
    """Neon clients retry a 423 (an operation still holds the object)."""
    for _ in range(300):
        try:
            return fn()
        except NeonAPIError as exc:
            if '"LOCKED"' not in str(exc):
                raise
            time.sleep(0.2)
    raise AssertionError("still locked after 60 s")


def _wait(neon: NeonAPI, project_id: str, ops: list[object]) -> None:
    for op in ops:
        op_id: str = op.id  # type: ignore[attr-defined]
        for _ in range(600):
            status = neon.operation(project_id, op_id).operation.status
            status = getattr(status, "value", status)
            if status in ("finished", "skipped", "cancelled"):
                break
            assert status not in ("failed", "error"), f"operation {op_id} {status}"
            time.sleep(0.2)


def test_neon_api_life_cycle(neon_api: RecordedApi) -> None:
    neon = NeonAPI(neon_api.api_key, base_url=neon_api.api_url + "/")
    me = neon.me()
    assert me.id and me.email
    assert any(k.name == "bootstrap" for k in neon.api_keys())

    name = f"neonapi-{uuid.uuid4().hex[:8]}"
    created = neon.project_create(project={"name": name})  # the SDK keeps only .project
    pid = created.project.id
    try:
        _wait(neon, pid, neon.operations(pid).operations)
        main = neon.branches(pid).branches[0]
        assert main.name == "main"
        assert pid in {p.id for p in neon.projects().projects}
        assert neon.project(pid).project.name == name

        branch = _retry_locked(lambda: neon.branch_create(
            pid, branch={"name": "dev", "parent_id": main.id},
            endpoints=[{"type": "read_write"}]))
        _wait(neon, pid, branch.operations)
        bid = branch.branch.id
        assert {b.name for b in neon.branches(pid).branches} == {"main", "dev"}
        assert neon.branch(pid, bid).branch.parent_id == main.id
        upd = _retry_locked(lambda: neon.branch_update(pid, bid, branch={"name": "dev2"}))
        assert upd.branch.name == "dev2"

        eps = neon.endpoints(pid).endpoints
        assert {e.branch_id for e in eps} == {main.id, bid}

        role = _retry_locked(lambda: neon.role_create(pid, bid, "svc"))
        _wait(neon, pid, role.operations)
        assert role.role.password
        assert neon.role_password_reveal(pid, bid, "svc").password == role.role.password
        db = _retry_locked(lambda: neon.database_create(
            pid, bid, database={"name": "svcdb", "owner_name": "svc"}))
        assert db.database.owner_name == "svc"
        assert "svcdb" in {d.name for d in neon.databases(pid, bid).databases}

        # neon-api's connection_uri has no branch: it asks for the default branch (main),
        # which has no svcdb, and the API must say so instead of printing a dead URI.
        with pytest.raises(NeonAPIError, match="NOT_FOUND"):
            neon.connection_uri(pid, database_name="svcdb", role_name="svc")
        ops = neon.operations(pid).operations
        assert ops and {o.project_id for o in ops} == {pid}

        _retry_locked(lambda: neon.database_delete(pid, bid, "svcdb"))
        _retry_locked(lambda: neon.role_delete(pid, bid, "svc"))
        _retry_locked(lambda: neon.branch_delete(pid, bid))
        assert {b.name for b in neon.branches(pid).branches} == {"main"}

        main_uri = neon.connection_uri(pid, database_name="neondb",
                                       role_name="neondb_owner").uri
        with psycopg.connect(main_uri, autocommit=True, connect_timeout=60) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        _retry_locked(lambda: neon.project_delete(pid))
    with pytest.raises(NeonAPIError, match="NOT_FOUND"):
        neon.project(pid)
