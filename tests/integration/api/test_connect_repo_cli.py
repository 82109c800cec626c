"""``argon connect-repo``: the GitHub-integration step as a CLI command — it mints a key
for one project and prints the NEON_API_KEY / NEON_PROJECT_ID pair for CI secrets."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.argon_env import ArgonEnv

pytestmark = pytest.mark.timeout(600)


def _get(env: ArgonEnv, key: str, path: str) -> httpx.Response:
    return httpx.get(env.api_url + path, headers={"Authorization": f"Bearer {key}"},
                     timeout=120)


def test_connect_repo_mints_a_project_scoped_key_for_ci(argon_env: ArgonEnv) -> None:
    env = argon_env
    mine = env.api("POST", "/projects", json={"project": {"name": "repo-app"}}).json()
    other = env.api("POST", "/projects", json={"project": {"name": "repo-else"}}).json()
    pid, other_id = mine["project"]["id"], other["project"]["id"]

    out = env.cli_json("connect-repo", "--project-id", pid, "--repo", "acme/app")
    key = out["NEON_API_KEY"]
    assert key.startswith("napi_") and out["NEON_PROJECT_ID"] == pid
    assert out["api_key_name"] == "github-acme/app"
    # what a CI job does with the pair: it reaches its project, and no other
    assert _get(env, key, f"/projects/{pid}/branches").status_code == 200
    assert _get(env, key, f"/projects/{other_id}/branches").status_code == 404
    assert [p["id"] for p in _get(env, key, "/projects").json()["projects"]] == [pid]
    keys = env.api("GET", f"/organizations/{out['org_id']}/api_keys").json()
    assert any(k["id"] == out["api_key_id"] and k["project_id"] == pid for k in keys)

    # the text form: the two secrets as NAME=value lines, ready for `gh secret set`
    text = env.cli("connect-repo", "--project-id", pid).stdout
    lines = dict(line.split("=", 1) for line in text.splitlines()[:2])
    assert lines["NEON_PROJECT_ID"] == pid and lines["NEON_API_KEY"].startswith("napi_")
    assert _get(env, lines["NEON_API_KEY"], f"/projects/{pid}").status_code == 200
    assert "gh secret set NEON_API_KEY" in text

    # a project that does not exist: a precise error, no key made
    before = len(env.api("GET", f"/organizations/{out['org_id']}/api_keys").json())
    res = env.cli("connect-repo", "--project-id", "no-such-project-9", check=False)
    assert res.returncode != 0 and "not found" in (res.stderr + res.stdout)
    assert len(env.api("GET", f"/organizations/{out['org_id']}/api_keys").json()) == before
