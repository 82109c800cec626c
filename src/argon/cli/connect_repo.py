"""``argon connect-repo``: the step Neon's GitHub integration does when a repository is
connected to a project — mint an API key that can touch that project only and hand over
the ``NEON_API_KEY`` / ``NEON_PROJECT_ID`` pair to store as the repository's CI secrets
(Neon's branch-per-pull-request workflows read exactly these two names).

The key is an organization key created with ``project_id`` (Neon's ``createOrgApiKey``),
through the API like every other CLI command; revoke it with ``DELETE
/organizations/{org_id}/api_keys/{id}``.
"""

from __future__ import annotations

from typing import Any

from argon.cli.client import ApiClient, api_path


def connect_repo(client: ApiClient, project_id: str, key_name: str | None = None,
                 repo: str | None = None) -> dict[str, Any]:
    """Create the project-scoped key and return what CI needs."""
    project = client.call("GET", api_path("projects", project_id))["project"]
    orgs = client.call("GET", "/users/me/organizations")["organizations"]
    org_id = str(orgs[0]["id"])
    name = key_name or (f"github-{repo}" if repo else f"github-{project['id']}")
    created = client.call("POST", api_path("organizations", org_id, "api_keys"),
                          json={"key_name": name[:64], "project_id": project["id"]})
    return {"NEON_API_KEY": created["key"], "NEON_PROJECT_ID": project["id"],
            "api_key_id": created["id"], "api_key_name": created["name"], "org_id": org_id,
            "api_host": client.base}


def render(result: dict[str, Any], repo: str | None) -> str:
    """The two secrets as ``NAME=value`` lines, then how to store them."""
    lines = [f"NEON_API_KEY={result['NEON_API_KEY']}",
             f"NEON_PROJECT_ID={result['NEON_PROJECT_ID']}",
             "",
             f"# A key for project {result['NEON_PROJECT_ID']} only (API key id "
             f"{result['api_key_id']}); it is shown once. Store both as CI secrets, e.g.:",
             f"#   gh secret set NEON_API_KEY{' -R ' + repo if repo else ''}",
             f"#   gh secret set NEON_PROJECT_ID{' -R ' + repo if repo else ''}",
             f"# and point Neon's actions and neonctl at Argon: NEON_API_HOST="
             f"{result['api_host']}"]
    return "\n".join(lines)
