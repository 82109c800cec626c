"""The real ``neonctl`` adds a read replica and prints a string that reaches it, as the
guides' analytics/BI replica workflow does."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.compat.conftest import Neonctl

pytestmark = pytest.mark.timeout(600)


def test_add_compute_read_only_and_connection_string_endpoint_type(neonctl: Neonctl) -> None:
    out = neonctl.json("projects", "create", "--name", f"nctl-rr-{uuid.uuid4().hex[:8]}")
    pid = out["project"]["id"]
    scope = ["--project-id", pid]
    try:
        primary = neonctl.run("connection-string", "main", *scope).stdout.strip()
        with psycopg.connect(primary, autocommit=True, connect_timeout=60) as conn:
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
            conn.execute("INSERT INTO orders SELECT generate_series(1, 42)")

        added = neonctl.json("branches", "add-compute", "main", *scope, "--type", "read_only")
        endpoint = added.get("endpoint", added)
        assert endpoint["type"] == "read_only"
        computes = neonctl.json("branches", "get", *scope, "main")   # still one branch
        assert computes["name"] == "main"
        listed = neonctl.json("branches", "list", *scope)
        assert [b["name"] for b in listed] == ["main"]

        replica = neonctl.run("connection-string", "main", *scope,
                              "--endpoint-type", "read_only").stdout.strip()
        assert replica != primary and endpoint["host"] in replica
        with psycopg.connect(replica, autocommit=True, connect_timeout=60) as conn:
            assert conn.execute("SELECT count(*) FROM orders").fetchone() == (42,)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO orders VALUES (43)")

        # the default (no --endpoint-type) is still the read_write one
        again = neonctl.run("connection-string", "main", *scope).stdout.strip()
        with psycopg.connect(again, autocommit=True, connect_timeout=60) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
    finally:
        neonctl.run("projects", "delete", pid, check=False)
