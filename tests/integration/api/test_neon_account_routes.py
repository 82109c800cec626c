"""The API calls Neon's clients make first (issue 9): ``/auth``, the organization, Neon's
region ids, project permissions and the consumption history, over HTTP against a real
Argon.  Every JSON answer is checked against Neon's published schema (``api``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres
from tests.integration.api.conftest import Call, wait_operations

pytestmark = pytest.mark.timeout(600)

NEON_REGION_IDS = ("aws-us-east-1", "aws-us-east-2", "aws-us-west-2", "aws-eu-central-1",
                   "aws-eu-west-2", "aws-ap-southeast-1", "aws-ap-southeast-2",
                   "aws-sa-east-1", "azure-eastus2", "azure-westus3", "azure-gwc")


def _create(api: Call, **project: Any) -> dict[str, Any]:
    r = api("POST", "/projects", json={"project": {"name": f"acct-{uuid.uuid4().hex[:6]}",
                                                   **project}})
    assert r.status_code == 201, r.text
    body = r.json()
    wait_operations(api, body["project"]["id"], body["operations"])
    return body


@pytest.fixture
def project(api: Call) -> Iterator[dict[str, Any]]:
    body = _create(api)
    yield body
    api("DELETE", f"/projects/{body['project']['id']}")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- /auth and the organization --------------------------------------------------------

def test_auth_details_name_the_api_key_user(argon_env: ArgonEnv, api: Call) -> None:
    r = api("GET", "/auth")
    assert r.status_code == 200, r.text
    me = api("GET", "/users/me").json()
    assert r.json() == {"account_id": me["id"], "auth_method": "api_key_user"}
    anonymous = httpx.get(argon_env.api_url + "/auth")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "UNAUTHORIZED"


def test_one_local_organization_owns_every_project(api: Call) -> None:
    r = api("GET", "/users/me/organizations")
    assert r.status_code == 200, r.text
    orgs = r.json()["organizations"]
    assert len(orgs) == 1
    org = orgs[0]
    got = api("GET", f"/organizations/{org['id']}")
    assert got.status_code == 200 and got.json() == org
    missing = api("GET", "/organizations/org-not-here-1234")
    assert missing.status_code == 404 and "org-not-here-1234" in missing.json()["message"]
    listed = api("GET", "/projects", params={"org_id": org["id"]}).json()["projects"]
    assert listed and {p["org_id"] for p in listed} == {org["id"]}
    one = api("GET", f"/projects/{listed[0]['id']}").json()["project"]
    assert one["org_id"] == org["id"]


# -- regions and the owner role ---------------------------------------------------------

def test_neon_region_ids_name_the_local_region(api: Call) -> None:
    regions = api("GET", "/regions").json()["regions"]
    by_id = {r["region_id"]: r for r in regions}
    assert set(NEON_REGION_IDS) <= set(by_id)
    assert [r["region_id"] for r in regions if r["default"]] == ["local"]

    body = _create(api, region_id="aws-eu-central-1")
    pid = body["project"]["id"]
    try:
        assert body["project"]["region_id"] == "aws-eu-central-1"
        assert api("GET", f"/projects/{pid}").json()["project"]["region_id"] == \
            "aws-eu-central-1"
        listed = api("GET", "/projects", params={"limit": 100}).json()["projects"]
        assert next(p for p in listed if p["id"] == pid)["region_id"] == "aws-eu-central-1"
    finally:
        api("DELETE", f"/projects/{pid}")

    before = {p["id"] for p in api("GET", "/projects", params={"limit": 100}).json()["projects"]}
    bad = api("POST", "/projects", json={"project": {"region_id": "aws-mars-1"}})
    assert bad.status_code == 400, bad.text
    assert "aws-mars-1" in bad.json()["message"] and "aws-us-east-2" in bad.json()["message"]
    after = {p["id"] for p in api("GET", "/projects", params={"limit": 100}).json()["projects"]}
    assert after == before


def test_owner_role_is_named_after_the_database(argon_env: ArgonEnv, api: Call) -> None:
    body = _create(api, branch={"database_name": "shop"})
    pid = body["project"]["id"]
    try:
        assert [r["name"] for r in body["roles"]] == ["shop_owner"]
        assert [(d["name"], d["owner_name"]) for d in body["databases"]] == \
            [("shop", "shop_owner")]
        with argon_env.connect(body["connection_uris"][0]["connection_uri"]) as conn:
            row = conn.execute("SELECT current_user, current_database()").fetchone()
        assert row == ("shop_owner", "shop")
    finally:
        api("DELETE", f"/projects/{pid}")
    both = _create(api, branch={"database_name": "shop", "role_name": "clerk"})
    try:
        assert [r["name"] for r in both["roles"]] == ["clerk"]
        assert both["databases"][0]["owner_name"] == "clerk"
    finally:
        api("DELETE", f"/projects/{both['project']['id']}")


# -- project permissions ------------------------------------------------------------------

def test_project_permissions_are_recorded_listed_and_revoked(
        argon_env: ArgonEnv, api: Call) -> None:
    pid = argon_env.default_project()["id"]
    base = f"/projects/{pid}/permissions"
    assert api("GET", base).json() == {"project_permissions": []}
    granted = api("POST", base, json={"email": "ada@example.com"})
    assert granted.status_code == 200, granted.text
    perm = granted.json()
    assert perm["granted_to_email"] == "ada@example.com" and "revoked_at" not in perm
    again = api("POST", base, json={"email": "ada@example.com"}).json()
    assert again["id"] == perm["id"]                      # one grant per address
    assert api("GET", base).json()["project_permissions"] == [perm]

    for bad in ({"email": "not-an-address"}, {"email": ""}, {}):
        r = api("POST", base, json=bad)
        assert r.status_code == 400, (bad, r.text)
    assert api("POST", "/projects/no-such-project-1/permissions",
               json={"email": "a@b.io"}).status_code == 404

    revoked = api("DELETE", f"{base}/{perm['id']}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["id"] == perm["id"] and revoked.json()["revoked_at"]
    assert api("GET", base).json() == {"project_permissions": []}
    assert api("DELETE", f"{base}/{perm['id']}").status_code == 404


def test_project_delete_drops_its_permissions(api: Call, project: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    assert api("POST", f"/projects/{pid}/permissions",
               json={"email": "bob@example.com"}).status_code == 200
    assert api("DELETE", f"/projects/{pid}").status_code == 200
    assert api("GET", f"/projects/{pid}/permissions").status_code == 404


# -- consumption history -----------------------------------------------------------------

def _v1(api: Call, pid: str, granularity: str = "hourly", **params: Any) -> httpx.Response:
    now = datetime.now(UTC)
    q = {"from": _iso(now - timedelta(hours=1)), "to": _iso(now + timedelta(hours=1)),
         "granularity": granularity, "project_ids": pid, **params}
    return api("GET", "/consumption_history/projects", params=q)


def _frames(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    projects = r.json()["projects"]
    assert len(projects) == 1
    return [f for p in projects[0]["periods"] for f in p["consumption"]]


def _totals(r: httpx.Response) -> dict[str, int]:
    keys = ("active_time_seconds", "compute_time_seconds", "written_data_bytes",
            "synthetic_storage_size_bytes")
    return {k: sum(f[k] for f in _frames(r)) for k in keys}


def test_consumption_history_reports_what_argon_measures(
        argon_env: ArgonEnv, api: Call, project: dict[str, Any]) -> None:
    pid = project["project"]["id"]
    ep = project["endpoints"][0]["id"]
    branch = project["branch"]["id"]
    with argon_env.connect(project["connection_uris"][0]["connection_uri"]) as conn:
        conn.execute("CREATE TABLE filler AS SELECT g, repeat('x', 1000) AS pad "
                     "FROM generate_series(1, 8000) g")                     # ~8 MB of WAL
    # Written data comes from the LSN samples taken while the compute runs (~10 s).
    deadline = time.monotonic() + 60
    while _totals(_v1(api, pid))["written_data_bytes"] < 8_000_000:
        assert time.monotonic() < deadline, _v1(api, pid).text
        time.sleep(1)
    time.sleep(2)
    suspended = api("POST", f"/projects/{pid}/endpoints/{ep}/suspend")
    assert suspended.status_code == 200, suspended.text
    wait_operations(api, pid, suspended.json()["operations"])

    first = _totals(_v1(api, pid))
    assert first["active_time_seconds"] >= 2
    cu = project["endpoints"][0]["autoscaling_limit_max_cu"]
    assert abs(first["compute_time_seconds"] - first["active_time_seconds"] * cu) <= 1
    assert first["synthetic_storage_size_bytes"] > 8_000_000 or \
        first["synthetic_storage_size_bytes"] == 0   # sizes are refreshed every minute
    # Suspended: the run is closed, so active time stops growing.
    time.sleep(2)
    assert _totals(_v1(api, pid))["active_time_seconds"] == first["active_time_seconds"]

    # Frames follow the granularity; from is rounded down.
    hourly = _frames(_v1(api, pid))
    assert len(hourly) in (2, 3)
    assert all(f["timeframe_start"].endswith(":00:00Z") for f in hourly)
    daily = _frames(_v1(api, pid, "daily"))
    assert all(f["timeframe_start"].endswith("T00:00:00Z") for f in daily)
    monthly = _frames(_v1(api, pid, "monthly",
                          **{"from": _iso(datetime.now(UTC) - timedelta(days=40))}))
    assert monthly[0]["timeframe_start"][8:10] == "01"
    assert sum(f["active_time_seconds"] for f in monthly) == first["active_time_seconds"]
    assert sum(f["written_data_bytes"] for f in daily) == first["written_data_bytes"]

    # Optional figures come when asked for, the four base figures always.
    assert all("data_storage_bytes_hour" in f
               for f in _frames(_v1(api, pid, include_v1_metrics="true")))
    asked = _frames(_v1(api, pid, metrics="logical_size_bytes"))
    assert all("logical_size_bytes" in f and "data_storage_bytes_hour" not in f
               and "written_data_bytes" in f for f in asked)

    # Neon's errors: out of range is 406, nonsense is 400, an unknown project 404.
    old = _v1(api, pid, **{"from": _iso(datetime.now(UTC) - timedelta(hours=300))})
    assert old.status_code == 406, old.text
    assert _v1(api, pid, "weekly").status_code == 400
    assert _v1(api, pid, metrics="cpu_seconds").status_code == 400
    assert _v1(api, "no-such-project-1").status_code == 404
    backwards = api("GET", "/consumption_history/projects", params={
        "from": _iso(datetime.now(UTC)), "to": _iso(datetime.now(UTC) - timedelta(hours=2)),
        "granularity": "hourly"})
    assert backwards.status_code == 400

    # Neon's v2 calls: compute unit seconds per project and per branch.
    now = datetime.now(UTC)
    window = {"from": _iso(now - timedelta(hours=1)), "to": _iso(now + timedelta(hours=1)),
              "granularity": "hourly", "project_ids": pid}
    v2 = api("GET", "/consumption_history/v2/projects",
             params={**window, "metrics": "compute_unit_seconds,root_branch_bytes_month"})
    assert v2.status_code == 200, v2.text
    metrics = [m for p in v2.json()["projects"][0]["periods"] for f in p["consumption"]
               for m in f["metrics"]]
    assert sum(m["value"] for m in metrics if m["metric_name"] == "compute_unit_seconds") \
        == first["compute_time_seconds"]
    per_branch = api("GET", "/consumption_history/v2/branches",
                     params={**window, "metrics": "compute_unit_seconds"})
    assert per_branch.status_code == 200, per_branch.text
    assert [b["branch_id"] for b in per_branch.json()["branches"]] == [branch]
    assert api("GET", "/consumption_history/v2/projects",
               params=window).status_code == 400             # metrics is required


def test_consumption_history_pages_through_projects(argon_env: ArgonEnv, api: Call,
                                                    project: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    q = {"from": _iso(now - timedelta(hours=1)), "to": _iso(now), "granularity": "hourly",
         "limit": 1}
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        r = api("GET", "/consumption_history/projects",
                params={**q, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        seen += [p["project_id"] for p in r.json()["projects"]]
        cursor = (r.json().get("pagination") or {}).get("cursor")
        if not cursor:
            break
    all_ids = {p["id"] for p in api("GET", "/projects", params={"limit": 100}).json()["projects"]}
    assert len(seen) == len(set(seen)) and set(seen) == all_ids
    assert {project["project"]["id"], argon_env.default_project()["id"]} <= set(seen)
    assert api("GET", "/consumption_history/projects",
               params={**q, "org_id": "org-someone-else"}).status_code == 404


def test_a_compute_that_died_with_argon_is_not_counted_while_both_were_down(
        fresh_argon_env: ArgonEnv) -> None:
    env = fresh_argon_env
    r = env.api("POST", "/projects", json={"project": {"name": "crashy"}})
    assert r.status_code == 201, r.text
    pid = r.json()["project"]["id"]
    created = time.monotonic()

    def totals() -> dict[str, int]:
        now = datetime.now(UTC)
        got = env.api("GET", "/consumption_history/projects", params={
            "from": _iso(now - timedelta(hours=2)), "to": _iso(now + timedelta(hours=1)),
            "granularity": "hourly", "project_ids": pid})
        return _totals(got)

    # Wait for a sample of the running compute (its bootstrap wrote WAL), then write
    # again after a second and wait for the next sample: the run's last sign of life is
    # then at least a second after its start, so it counts for at least one second.
    deadline = time.monotonic() + 60
    while (written := totals()["written_data_bytes"]) == 0:
        assert time.monotonic() < deadline
        time.sleep(1)
    time.sleep(1.5)
    with env.connect(r.json()["connection_uris"][0]["connection_uri"]) as conn:
        conn.execute("create table later_write as select 1 as x")
    while totals()["written_data_bytes"] == written:
        assert time.monotonic() < deadline
        time.sleep(1)
    env.kill9()                                   # Argon and its compute die together
    kill_leftover_postgres(env.home)
    up_for = time.monotonic() - created
    time.sleep(10)
    env.start()
    first = totals()
    assert 0 < first["active_time_seconds"] <= up_for + 1, (first, up_for)
    time.sleep(2)
    assert totals()["active_time_seconds"] == first["active_time_seconds"]
