"""What must be refused is refused, with an error that says why; nothing is half-done."""

from __future__ import annotations

import pytest

from tests.fixtures.argon_env import ArgonEnv
from tests.integration.core.helpers import create_branch, new_project


@pytest.fixture(scope="module")
def project(argon_env: ArgonEnv) -> dict:
    return new_project(argon_env, "rules")


def test_default_branch_cannot_be_deleted(argon_env: ArgonEnv, project: dict) -> None:
    pid, main = project["project"]["id"], project["branch"]["id"]
    r = argon_env.api("DELETE", f"/projects/{pid}/branches/{main}")
    assert r.status_code in (400, 409, 422), r.text
    assert "default" in r.json()["message"]


def test_branch_with_children_cannot_be_deleted(argon_env: ArgonEnv, project: dict) -> None:
    pid = project["project"]["id"]
    parent = create_branch(argon_env, pid, "parent-x", endpoint=False)["branch"]
    create_branch(argon_env, pid, "child-x", parent_id=parent["id"], endpoint=False)
    r = argon_env.api("DELETE", f"/projects/{pid}/branches/{parent['id']}")
    assert r.status_code in (400, 409, 422), r.text
    assert "child" in r.json()["message"]
    names = [b["name"] for b in argon_env.api("GET", f"/projects/{pid}/branches").json()["branches"]]
    assert "parent-x" in names and "child-x" in names


def test_duplicate_branch_name_says_already_exists(argon_env: ArgonEnv, project: dict) -> None:
    pid = project["project"]["id"]
    create_branch(argon_env, pid, "dup", endpoint=False)
    r = argon_env.api("POST", f"/projects/{pid}/branches", json={"branch": {"name": "dup"}})
    assert r.status_code == 409, r.text
    assert "already exists" in r.json()["message"]


def test_delete_then_the_branch_and_its_files_are_gone(argon_env: ArgonEnv, project: dict) -> None:
    pid = project["project"]["id"]
    before = {p.name for p in (argon_env.home / "timelines").iterdir()}
    b = create_branch(argon_env, pid, "short-lived")
    r = argon_env.api("DELETE", f"/projects/{pid}/branches/{b['branch']['id']}")
    assert r.status_code == 200, r.text
    assert argon_env.api("GET", f"/projects/{pid}/branches/{b['branch']['id']}").status_code == 404
    after = {p.name for p in (argon_env.home / "timelines").iterdir()}
    assert after == before


def test_rename_and_set_default(argon_env: ArgonEnv, project: dict) -> None:
    pid = project["project"]["id"]
    b = create_branch(argon_env, pid, "old-name", endpoint=False)["branch"]
    r = argon_env.api("PATCH", f"/projects/{pid}/branches/{b['id']}",
                      json={"branch": {"name": "preview/pr-12"}})
    assert r.status_code == 200 and r.json()["branch"]["name"] == "preview/pr-12"
    r = argon_env.api("POST", f"/projects/{pid}/branches/{b['id']}/set_as_default")
    assert r.status_code == 200 and r.json()["branch"]["default"] is True
    listed = argon_env.api("GET", f"/projects/{pid}/branches").json()["branches"]
    assert [x["id"] for x in listed if x["default"]] == [b["id"]]
    # restore the original default for the other tests
    argon_env.api("POST", f"/projects/{pid}/branches/{project['branch']['id']}/set_as_default")


@pytest.mark.parametrize("body,needle", [
    ({"project": {"pg_version": 11}}, "pg_version"),
    ({"project": {"history_retention_seconds": 99999999}}, "history_retention_seconds"),
    ({"project": {"default_endpoint_settings": {"suspend_timeout_seconds": -5}}},
     "suspend_timeout_seconds"),
    ({"project": {"default_endpoint_settings": {"autoscaling_limit_min_cu": 0.1}}},
     "autoscaling_limit_min_cu"),
])
def test_bad_project_input_is_rejected_clearly(argon_env: ArgonEnv, body: dict, needle: str) -> None:
    before = len(argon_env.api("GET", "/projects", params={"limit": 400}).json()["projects"])
    r = argon_env.api("POST", "/projects", json=body)
    assert 400 <= r.status_code < 500, r.text
    assert needle in r.json()["message"]
    after = len(argon_env.api("GET", "/projects", params={"limit": 400}).json()["projects"])
    assert after == before


def test_unknown_parent_is_not_found(argon_env: ArgonEnv, project: dict) -> None:
    pid = project["project"]["id"]
    r = argon_env.api("POST", f"/projects/{pid}/branches",
                      json={"branch": {"parent_id": "br-nope-nope-00000000"}})
    assert r.status_code == 404, r.text


def test_second_argon_on_the_same_home_is_refused(argon_env: ArgonEnv) -> None:
    res = argon_env.cli("start", "--home", str(argon_env.home), "--api-port", "1",
                        check=False)
    assert res.returncode != 0
    assert "already running" in (res.stderr + res.stdout)


def test_bad_cli_arguments_are_explained(argon_env: ArgonEnv) -> None:
    res = argon_env.cli("start", "--api-port", "70000", check=False)
    assert res.returncode != 0 and "--api-port" in (res.stderr + res.stdout)
    res = argon_env.cli("start", "--clone-driver", "zfs", check=False)
    assert res.returncode != 0 and "--clone-driver" in (res.stderr + res.stdout)
