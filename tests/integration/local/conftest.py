"""Fixtures shared by the import tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.fixtures.argon_env import ArgonEnv, wait_operations


@pytest.fixture
def project(argon_env: ArgonEnv) -> Iterator[str]:
    r = argon_env.api("POST", "/projects",
                      json={"project": {"name": f"imp-{uuid.uuid4().hex[:8]}"}})
    assert r.status_code == 201, r.text
    pid = r.json()["project"]["id"]
    wait_operations(argon_env.api, pid, r.json()["operations"])
    yield pid
    argon_env.api("DELETE", f"/projects/{pid}")
