"""The HTTP layer's own duties: auth, error shape, request ids, limits, docs, op ids."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

SPEC = (Path(__file__).resolve().parents[2] / "compat" / "node_modules" / "@neondatabase"
        / "api-client" / "public-v2-for-users.gen.yaml")


def _is_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code
    assert body["message"]
    assert r.headers["x-request-id"] == body["request_id"]
    return body  # type: ignore[no-any-return]


def test_every_route_needs_a_valid_bearer_key(client: TestClient) -> None:
    for path in ("/api/v2/projects", "/api/v2/users/me", "/api/v2/regions", "/api/v2/api_keys"):
        body = _is_error(client.get(path), 401, "UNAUTHORIZED")
        assert "Authorization: Bearer" in body["message"]
        _is_error(client.get(path, headers={"Authorization": "Bearer nope"}), 401,
                  "UNAUTHORIZED")
        _is_error(client.get(path, headers={"Authorization": "Basic Zm9vOmJhcg=="}), 401,
                  "UNAUTHORIZED")


def test_api_keys_create_list_revoke(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/api/v2/api_keys", json={"key_name": "ci"}, headers=auth)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["name"] == "ci" and created["key"]
    new_auth = {"Authorization": f"Bearer {created['key']}"}
    assert client.get("/api/v2/projects", headers=new_auth).status_code == 200

    listed = client.get("/api/v2/api_keys", headers=auth).json()
    assert {"unit", "ci"} <= {k["name"] for k in listed}
    assert all("key" not in k for k in listed), "a secret is shown only once"

    revoked = client.delete(f"/api/v2/api_keys/{created['id']}", headers=auth).json()
    assert revoked["revoked"] is True and revoked["id"] == created["id"]
    _is_error(client.get("/api/v2/projects", headers=new_auth), 401, "UNAUTHORIZED")


def test_single_tenant_user_and_regions(client: TestClient, auth: dict[str, str]) -> None:
    me = client.get("/api/v2/users/me", headers=auth).json()
    assert me["id"] and me["email"] and isinstance(me["auth_accounts"], list)
    regions = client.get("/api/v2/regions", headers=auth).json()["regions"]
    assert [r["region_id"] for r in regions if r["default"]] == ["local"]


def test_errors_are_json_with_request_ids(client: TestClient, auth: dict[str, str]) -> None:
    r = client.get("/api/v2/projects/nothing-here-12345678", headers=auth)
    _is_error(r, 404, "NOT_FOUND")
    r = client.get("/api/v2/no/such/route", headers={**auth, "X-Request-ID": "req-42"})
    assert _is_error(r, 404, "NOT_FOUND")["request_id"] == "req-42"
    _is_error(client.put("/api/v2/projects", headers=auth), 405, "METHOD_NOT_ALLOWED")
    # A request id that could forge log lines is replaced, not echoed.
    r = client.get("/api/v2/regions", headers={**auth, "X-Request-ID": "a b\tc"})
    assert r.headers["x-request-id"] != "a b\tc"


@pytest.mark.parametrize(("body", "needle"), [
    ({"project": {"name": "x", "colour": "red"}}, "colour: unknown field"),
    ({"project": {"pg_version": "seventeen"}}, "pg_version"),
    ({"project": {"history_retention_seconds": 99999999}}, "history_retention_seconds"),
    ({"project": {"name": ""}}, "name"),
    ([], "body: Input should be a valid dictionary"),
])
def test_bad_bodies_are_400_with_a_clear_message(client: TestClient, auth: dict[str, str],
                                                 body: Any, needle: str) -> None:
    r = client.post("/api/v2/projects", json=body, headers=auth)
    assert needle in _is_error(r, 400, "BAD_REQUEST")["message"]


def test_malformed_ids_and_json(client: TestClient, auth: dict[str, str]) -> None:
    r = client.get("/api/v2/projects/NOT_AN_ID!/branches", headers=auth)
    assert "project_id" in _is_error(r, 400, "BAD_REQUEST")["message"]
    r = client.post("/api/v2/projects", content=b"{oops", headers={
        **auth, "Content-Type": "application/json"})
    assert "JSON" in _is_error(r, 400, "BAD_REQUEST")["message"]
    r = client.delete("/api/v2/api_keys/not-a-number", headers=auth)
    _is_error(r, 400, "BAD_REQUEST")


def test_huge_bodies_are_refused(client: TestClient, auth: dict[str, str]) -> None:
    huge = {"project": {"name": "x" * (2 * 1024 * 1024)}}
    body = _is_error(client.post("/api/v2/projects", json=huge, headers=auth), 413,
                     "PAYLOAD_TOO_LARGE")
    assert "smaller" in body["message"]


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    spec = client.get("/api/v2/openapi.json")
    assert spec.status_code == 200
    assert "/api/v2/projects/{project_id}/branches" in spec.json()["paths"]
    docs = client.get("/api/v2/docs")
    assert docs.status_code == 200 and "/api/v2/openapi.json" in docs.text


@pytest.mark.skipif(not SPEC.exists(), reason="npm packages missing: run 'npm ci' in "
                    "tests/compat")
def test_operation_ids_paths_and_methods_are_neons(client: TestClient) -> None:
    ours = client.get("/api/v2/openapi.json").json()["paths"]
    neon = yaml.safe_load(SPEC.read_text())["paths"]
    neon_ops = {(m, p): op["operationId"] for p, item in neon.items()
                for m, op in item.items() if isinstance(op, dict) and "operationId" in op}
    for path, item in ours.items():
        for method, op in item.items():
            key = (method, path.removeprefix("/api/v2"))
            assert key in neon_ops, f"{method.upper()} {path} is not in Neon's spec"
            assert op["operationId"] == neon_ops[key]
