"""What Neon clients rely on beyond the happy path, against a real Argon."""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api.conftest import Call, wait_operations

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def project(api: Call) -> Iterator[dict[str, Any]]:
    r = api("POST", "/projects", json={"project": {"name": f"it-{uuid.uuid4().hex[:6]}"}})
    assert r.status_code == 201, r.text
    body = r.json()
    wait_operations(api, body["project"]["id"], body["operations"])
    yield body
    api("DELETE", f"/projects/{body['project']['id']}")


def test_created_project_has_neons_defaults(project: dict[str, Any]) -> None:
    assert project["branch"]["name"] == "main" and project["branch"]["default"] is True
    assert [d["name"] for d in project["databases"]] == ["neondb"]
    assert [r["name"] for r in project["roles"]] == ["neondb_owner"]
    assert project["roles"][0]["password"]
    (ep,) = project["endpoints"]
    assert ep["type"] == "read_write" and project["branch"]["id"] == ep["branch_id"]
    assert ep["id"] in ep["host"] or ":" in ep["host"]
    uri = project["connection_uris"][0]
    assert uri["connection_parameters"]["database"] == "neondb"
    assert uri["connection_uri"].startswith("postgresql://neondb_owner:")


def test_branch_names_search_count_and_unwrapped_body(api: Call,
                                                      project: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    # Unwrapped body, as some scripts send it; parent given by name.
    r = api("POST", f"/projects/{pid}/branches", json={"name": "preview/pr-7",
                                                       "parent_id": "main"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["branch"]["parent_id"] == project["branch"]["id"]
    assert created["endpoints"] == []
    wait_operations(api, pid, created["operations"])

    dup = api("POST", f"/projects/{pid}/branches", json={"branch": {"name": "preview/pr-7"}})
    assert dup.status_code == 409 and "already exists" in dup.json()["message"]

    found = api("GET", f"/projects/{pid}/branches",
                params={"search": "preview/pr-7", "limit": 10000}).json()["branches"]
    assert [b["name"] for b in found] == ["preview/pr-7"]
    assert api("GET", f"/projects/{pid}/branches/count").json() == {"count": 2}
    assert api("GET", f"/projects/{pid}/branches/count",
               params={"search": "pr-"}).json() == {"count": 1}
    by_name = api("GET", f"/projects/{pid}/branches/{created['branch']['id']}").json()
    assert by_name["branch"]["name"] == "preview/pr-7"


def test_pagination_with_cursor(api: Call, project: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    for i in range(3):
        r = api("POST", f"/projects/{pid}/branches", json={"branch": {"name": f"pg-{i}"}})
        assert r.status_code == 201, r.text
        wait_operations(api, pid, r.json()["operations"])
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api("GET", f"/projects/{pid}/branches", params=params).json()
        seen += [b["name"] for b in page["branches"]]
        cursor = page.get("pagination", {}).get("next")
        if not cursor or not page["branches"]:
            break
    assert sorted(seen) == ["main", "pg-0", "pg-1", "pg-2"]


def test_in_use_and_default_objects_refuse_deletion(api: Call,
                                                    project: dict[str, Any]) -> None:
    pid, main = project["project"]["id"], project["branch"]["id"]
    r = api("DELETE", f"/projects/{pid}/branches/{main}")
    assert r.status_code in (400, 409, 422) and "default" in r.json()["message"]
    r = api("DELETE", f"/projects/{pid}/branches/{main}/roles/neondb_owner")
    assert 400 <= r.status_code < 500 and r.json()["message"]
    # Still there and intact.
    names = [x["name"] for x in api("GET", f"/projects/{pid}/branches/{main}/roles").json()[
        "roles"]]
    assert "neondb_owner" in names


def test_endpoint_start_suspend_restart(api: Call, project: dict[str, Any]) -> None:
    pid, ep = project["project"]["id"], project["endpoints"][0]["id"]
    for action in ("start", "restart", "suspend"):
        r = api("POST", f"/projects/{pid}/endpoints/{ep}/{action}")
        assert r.status_code == 200, r.text
        wait_operations(api, pid, r.json()["operations"])
    state = api("GET", f"/projects/{pid}/endpoints/{ep}").json()["endpoint"]["current_state"]
    assert state == "idle"
    r = api("PATCH", f"/projects/{pid}/endpoints/{ep}",
            json={"endpoint": {"suspend_timeout_seconds": 600}})
    assert r.status_code == 200
    assert r.json()["endpoint"]["suspend_timeout_seconds"] == 600


def test_concurrent_mutations_answer_created_or_locked(api: Call,
                                                       project: dict[str, Any]) -> None:
    pid = project["project"]["id"]

    def create(i: int) -> Any:
        return api("POST", f"/projects/{pid}/branches", json={"branch": {"name": f"c-{i}"}})

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(create, range(4)))
    assert {r.status_code for r in results} <= {201, 423}, [r.text for r in results]
    for r in results:
        if r.status_code == 423:
            assert r.json()["code"] == "LOCKED"
        else:
            wait_operations(api, pid, r.json()["operations"])
    made = [r for r in results if r.status_code == 201]
    assert made, "at least one of the concurrent creations must succeed"


def test_schema_endpoint_returns_sql(api: Call, project: dict[str, Any]) -> None:
    pid, main = project["project"]["id"], project["branch"]["id"]
    r = api("GET", f"/projects/{pid}/branches/{main}/schema", params={"db_name": "neondb"})
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["sql"], str)
    # a point before the branch's history is refused with the range that is allowed
    r = api("GET", f"/projects/{pid}/branches/{main}/schema",
            params={"db_name": "neondb", "lsn": "0/1"})
    assert r.status_code == 400 and "branch point" in r.json()["message"], r.text
