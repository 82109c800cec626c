"""Wire bodies become control requests: Neon's wrapped form, the unwrapped form, defaults."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from argon.api import mapping as mp
from argon.api.schemas import branches as wb
from argon.api.schemas import endpoints as we
from argon.api.schemas import projects as wp


def test_wrapped_branch_body_with_endpoints() -> None:
    body = wb.BranchCreateRequest.model_validate({
        "branch": {"name": "dev", "parent_id": "br-a-1", "parent_lsn": "0/16B3748"},
        "endpoints": [{"type": "read_only", "suspend_timeout_seconds": -1,
                       "settings": {"pg_settings": {"work_mem": "8MB"}}}]})
    req = mp.branch_create(body)
    assert (req.name, req.parent_id, req.parent_lsn) == ("dev", "br-a-1", "0/16B3748")
    (ep,) = req.endpoints
    assert ep.type == "read_only" and ep.suspend_timeout_seconds == -1
    assert ep.pg_settings == {"work_mem": "8MB"}


def test_unwrapped_branch_body_and_empty_body() -> None:
    req = mp.branch_create(wb.BranchCreateRequest.model_validate(
        {"name": "preview/pr-1", "parent_id": "main"}))
    assert (req.name, req.parent_id, req.endpoints) == ("preview/pr-1", "main", [])
    assert mp.branch_create(None).name is None
    # Neon: an empty parent_id means the default branch.
    assert mp.branch_create(wb.BranchCreateRequest.model_validate(
        {"branch": {"parent_id": ""}})).parent_id is None


def test_branch_update_distinguishes_clearing_expiry_from_leaving_it() -> None:
    keep = mp.branch_update(wb.BranchUpdateRequest.model_validate({"branch": {"name": "x"}}))
    assert keep.clear_expires_at is False and keep.expires_at is None
    clear = mp.branch_update(wb.BranchUpdateRequest.model_validate(
        {"branch": {"expires_at": None}}))
    assert clear.clear_expires_at is True
    when = datetime(2030, 1, 1, tzinfo=UTC)
    set_ = mp.branch_update(wb.BranchUpdateRequest.model_validate(
        {"branch": {"expires_at": "2030-01-01T00:00:00Z"}}))
    assert set_.expires_at == when and not set_.clear_expires_at


def test_project_create_takes_deprecated_autoscaling_and_branch_names() -> None:
    req = mp.project_create(wp.ProjectCreateRequest.model_validate({"project": {
        "name": "p", "pg_version": 15, "autoscaling_limit_min_cu": 0.5,
        "settings": {"enable_logical_replication": True},
        "branch": {"name": "trunk", "role_name": "sally", "database_name": "app"}}}))
    assert (req.branch_name, req.role_name, req.database_name) == ("trunk", "sally", "app")
    assert req.default_endpoint_settings is not None
    assert req.default_endpoint_settings.autoscaling_limit_min_cu == 0.5
    assert req.settings == {"enable_logical_replication": True}
    assert req.pg_version == 15


@pytest.mark.parametrize("body", [
    {"endpoint": {"type": "read_write"}},                                 # no branch_id
    {"endpoint": {"branch_id": "br-a", "type": "primary"}},              # unknown type
    {"endpoint": {"branch_id": "br-a", "type": "read_only",
                  "autoscaling_limit_min_cu": 0.1}},                      # below 0.25 CU
    {"endpoint": {"branch_id": "br-a", "type": "read_only",
                  "suspend_timeout_seconds": 604801}},                    # over a week
    {"endpoint": {"branch_id": "BR_A", "type": "read_only"}},            # malformed id
])
def test_endpoint_bodies_outside_neons_contract_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        we.EndpointCreateRequest.model_validate(body)
