"""``@neondatabase/toolkit`` (Neon's API client plus the serverless driver) against Argon.

The toolkit's constructor takes only an API key; its documented ``toolkit.apiClient`` is
the axios-based API client, whose base URL is pointed at Argon (``js/toolkit_lifecycle.mjs``).
``sql()`` runs the connection string from the create-project answer through
``@neondatabase/serverless`` with no overrides, so it needs the Neon-style mode
(``https://api.argon.localhost/sql`` on port 443) and Argon's CA in ``NODE_EXTRA_CA_CERTS``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.compat.conftest import need_node, run_node_script
from tests.fixtures.argon_env import ArgonEnv
from tests.fixtures.port443 import neon_style_argon

# the test also waits for the port-443 lock (tests/fixtures/port443.py)
pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def argon_neon_style(port443: None) -> Iterator[ArgonEnv]:
    # port443: this Argon binds 443 for the whole module; other runs wait for the lock
    need_node("@neondatabase/toolkit")
    with neon_style_argon("neon-toolkit") as env:
        yield env


def test_toolkit_creates_a_project_runs_sql_and_deletes_it(argon_neon_style: ArgonEnv) -> None:
    env = argon_neon_style
    res = run_node_script("toolkit_lifecycle.mjs", {
        "NEON_API_KEY": env.api_key, "NEON_API_HOST": env.api_url,
        "NODE_EXTRA_CA_CERTS": str(env.home / "tls" / "ca.crt"), "NODE_NO_WARNINGS": "1"},
        timeout=300)
    assert res.code == 0, f"{res.stderr}\n{res.stdout}"
    out = res.json()
    assert out["name"] == "toolkit-made"
    assert ".argon.localhost" in out["uri"], out["uri"]
    assert out["rows"] == [{"name": "Sam Smith", "who": "neondb_owner"}]
    # deleteProject really deleted it
    assert env.api("GET", f"/projects/{out['projectId']}").status_code == 404
