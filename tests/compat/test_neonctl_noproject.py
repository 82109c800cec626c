"""The real ``neonctl`` without ``--project-id``: it asks for the caller's organizations,
lists that organization's projects and uses the only one, as against Neon.

A fresh Argon (one project, ``default``) so that "exactly one project" holds; every
answer neonctl received is checked against Neon's schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.compat.conftest import Neonctl, RecordedApi, need_node
from tests.compat.neon_spec import neon_spec
from tests.compat.recording import Recorder, RecordingProxy
from tests.fixtures.argon_env import ArgonEnv

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def lone_neonctl(fresh_argon_env: ArgonEnv, argon_tmp: Path) -> Iterator[Neonctl]:
    need_node("neonctl")
    origin = urlsplit(fresh_argon_env.api_url)
    recorder = Recorder()
    with RecordingProxy(f"{origin.scheme}://{origin.netloc}", recorder) as proxy:
        config = argon_tmp / "neonctl-config"
        config.mkdir()
        yield Neonctl(RecordedApi(fresh_argon_env, proxy, recorder), config)
    recorder.check(neon_spec())


def _requests(neonctl: Neonctl) -> list[str]:
    return [f"{x.method} {x.path}" for x in neonctl.api.recorder.exchanges]


def test_branches_list_without_project_id_uses_the_only_project(
        lone_neonctl: Neonctl) -> None:
    env = lone_neonctl.api.env
    only = env.default_project()
    branches = lone_neonctl.json("branches", "list")
    assert [b["name"] for b in branches] == ["main"]
    assert {b["project_id"] for b in branches} == {only["id"]}

    # How it found the project: the organization first, then (that organization's)
    # projects.  The recorder keeps paths only, so org_id is not asserted here.
    seen = _requests(lone_neonctl)
    assert "GET /api/v2/users/me/organizations" in seen, seen
    assert seen.index("GET /api/v2/users/me/organizations") < \
        seen.index("GET /api/v2/projects"), seen

    # The other commands that pick the only project or organization.
    uri = lone_neonctl.run("connection-string").stdout.strip()
    with env.connect(uri) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("neondb",)
    orgs = lone_neonctl.json("orgs", "list")
    assert [o["id"] for o in orgs] == [
        o["id"] for o in env.api("GET", "/users/me/organizations").json()["organizations"]]

    # With a second project neonctl asks for --project-id, as against Neon.
    second = env.api("POST", "/projects", json={"project": {"name": "second"}})
    assert second.status_code == 201, second.text
    try:
        res = lone_neonctl.run("branches", "list", check=False)
        assert res.code != 0
        assert "Multiple projects found" in res.stderr + res.stdout
    finally:
        env.api("DELETE", f"/projects/{second.json()['project']['id']}")
