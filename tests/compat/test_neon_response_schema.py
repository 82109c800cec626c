"""Property-based input from Neon's own published spec (schemathesis), every answer checked
against Neon's response schema: no schema break, in any operation Argon serves.

Issue 8 (finding 9): this found 140 breaks in 5 operations: project ``settings`` stored
as sent (``preload_libraries``, ``audit_log_level``...) broke every later project
answer, and two features Argon lacks answered 404 without Neon's ``reason``.  Cases are
generated from Neon's spec (not Argon's), with ids pinned to a real project, so bodies
Neon's clients may send reach the services; afterwards the project's answers are
checked again, since a stored value breaks the answers that come after it.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.compat.neon_spec import SPEC_PATH, neon_spec
from tests.fixtures.argon_env import ArgonEnv

pytestmark = [pytest.mark.timeout(900),
              pytest.mark.skipif(not SPEC_PATH.exists(),
                                 reason=f"Neon's spec is missing: run 'npm ci' in "
                                        f"{SPEC_PATH.parents[2]}")]

# Would remove the fixtures (or the key) the other cases need.
SKIP = {"revokeApiKey", "deleteProject", "deleteProjectBranch", "deleteProjectEndpoint",
        "deleteProjectBranchRole", "deleteProjectBranchDatabase", "createProject",
        "restoreProjectBranch", "transferProjectsFromOrgToOrg"}
# Features Argon answers with Neon's "not enabled" error.
NOT_ENABLED = {"getProjectBranchStorage", "getProjectBranchAiGateway"}
EXAMPLES = 5
STORED_SETTINGS = [
    {"audit_log_level": "loud"},
    {"preload_libraries": {"use_defaults": False, "enabled_libraries": [{}]}},
    {"maintenance_window": {"weekdays": ["monday"], "start_time": 1, "end_time": ""}},
    {"quota": {"active_time_seconds": -1, "logical_size_bytes": "big"}},
    {"hipaa": "yes please"},
    {"allowed_ips": {"ips": [], "protected_branches_only": {}}},
]


def _served(env: ArgonEnv) -> set[str]:
    """Operation ids of Neon's spec that Argon serves (its own OpenAPI, plus NOT_ENABLED)."""
    own = env.api("GET", "/openapi.json").json()
    ids = {op.get("operationId") for item in own["paths"].values() for op in item.values()
           if isinstance(op, dict)}
    return (ids | NOT_ENABLED) - SKIP


def _check(method: str, path: str, response: Any, failures: list[str]) -> None:
    """Validate one answer (an httpx or a schemathesis response) against Neon's spec."""
    try:
        body = response.json()
    except ValueError:
        return  # not JSON (e.g. an empty 204): nothing to validate
    try:
        neon_spec().validate(method, path, response.status_code, body)
    except AssertionError as exc:
        failures.append(str(exc)[:400])


def test_answers_match_neons_response_schema(fresh_argon_env: ArgonEnv) -> None:
    env = fresh_argon_env
    project = env.default_project()
    pid = project["id"]
    main = next(b for b in env.api("GET", f"/projects/{pid}/branches").json()["branches"]
                if b["default"])
    endpoint = env.api("GET", f"/projects/{pid}/endpoints").json()["endpoints"][0]
    pinned = {"project_id": pid, "branch_id": main["id"], "endpoint_id": endpoint["id"],
              "database_name": "neondb", "role_name": "neondb_owner"}
    headers = {"Authorization": f"Bearer {env.api_key}"}
    schema = schemathesis.openapi.from_path(str(SPEC_PATH))
    served = _served(env)
    failures: list[str] = []
    tried: set[str] = set()

    for result in schema.get_all_operations():
        operation = result.ok()
        op_id = operation.definition.raw.get("operationId")
        if op_id not in served:
            continue
        names = {p.name for p in operation.path_parameters}
        if not names <= pinned.keys():
            continue
        tried.add(op_id)
        fixed = {k: v for k, v in pinned.items() if k in names} or None
        strategy = st.one_of(*[operation.as_strategy(mode, path_parameters=fixed) for mode in
                               (schemathesis.GenerationMode.POSITIVE,
                                schemathesis.GenerationMode.NEGATIVE)])

        @given(case=strategy)
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            response = case.call(base_url=env.api_url, headers=headers, timeout=120)
            path = case.formatted_path
            _check(case.method, path, response, failures)

        run()

    # Wrong-typed project settings, each sent once for certain (the generated cases find
    # them only now and then): refused, or stored as Neon types them.
    for settings_value in STORED_SETTINGS:
        path = f"/projects/{pid}"
        _check("PATCH", path, env.api("PATCH", path, json={"project": {
            "settings": settings_value}}), failures)
    # A value stored by one case must not break the answers that come after it.
    for path in ("/projects", f"/projects/{pid}", f"/projects/{pid}/branches",
                 f"/projects/{pid}/endpoints", f"/projects/{pid}/branches/{main['id']}"):
        _check("GET", path, env.api("GET", path), failures)
    assert len(tried) > 30, sorted(tried)
    assert not failures, (f"{len(failures)} schema breaks:\n" +
                          "\n".join(sorted(set(failures))[:20]))
