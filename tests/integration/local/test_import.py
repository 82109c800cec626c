"""``argon import`` and ``POST /projects/{id}/import``: a real Postgres started by the test
(several schemas, a sequence, a view, an extension (citext), Supabase's ``pg_database_owner``
schema owner and GRANTs to roles Argon does not have) copied into a new branch and a new
project with the rows counted; failed imports leave nothing behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from argon.pg import OsUser
from tests.fixtures.argon_env import ArgonEnv
from tests.fixtures.local_door import branches
from tests.fixtures.pgserver import PgServer, make_pg_server

pytestmark = pytest.mark.timeout(600)

SOURCE_SQL = [
    "CREATE ROLE anon NOLOGIN", "CREATE ROLE authenticated NOLOGIN",
    "CREATE ROLE app_owner NOLOGIN",
    # what Supabase's dumps carry: public owned by pg_database_owner, grants to its roles
    "ALTER SCHEMA public OWNER TO pg_database_owner",
    "GRANT USAGE ON SCHEMA public TO anon, authenticated",
    "CREATE EXTENSION citext",
    "CREATE SCHEMA store AUTHORIZATION app_owner",
    ("CREATE TABLE store.items (id serial PRIMARY KEY, name text NOT NULL, "
     "tag citext DEFAULT 'X')"),
    "INSERT INTO store.items (name) SELECT 'item ' || g FROM generate_series(1, 1000) g",
    "ALTER TABLE store.items OWNER TO app_owner",
    "CREATE SEQUENCE public.order_no START 500",
    ("CREATE TABLE public.orders (id bigint PRIMARY KEY DEFAULT "
     "nextval('public.order_no'), item int REFERENCES store.items (id), qty int)"),
    "INSERT INTO public.orders (item, qty) SELECT g, g % 7 FROM generate_series(1, 250) g",
    ("CREATE VIEW public.order_totals AS SELECT item, sum(qty) AS qty FROM public.orders "
     "GROUP BY item"),
    "GRANT SELECT ON public.orders, public.order_totals TO anon",
    "GRANT ALL ON public.orders TO authenticated",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO anon",
    # Supabase's row-level security: policies name its roles
    "ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY own_orders ON public.orders TO authenticated USING (qty > 0)",
]


@pytest.fixture
def source(argon_tmp: Path, pg_user: OsUser) -> Iterator[tuple[PgServer, str]]:
    server = make_pg_server(argon_tmp, pg_user)
    server.start()
    try:
        server.create_role("dumper", "dump-pw")
        with server.connect() as c:
            c.execute("ALTER ROLE dumper SUPERUSER")
            c.execute("CREATE DATABASE shop")
        with server.connect(dbname="shop") as c:
            for stmt in SOURCE_SQL:
                c.execute(stmt)
        yield server, server.tcp_dsn("dumper", "dump-pw", "shop")
    finally:
        server.stop()


def branch_uri(env: ArgonEnv, project: str, branch: str, db: str, role: str) -> str:
    r = env.api("GET", f"/projects/{project}/connection_uri", params={
        "branch_id": branch, "database_name": db, "role_name": role})
    assert r.status_code == 200, r.text
    return str(r.json()["uri"])


def check_copied(env: ArgonEnv, uri: str) -> None:
    with env.connect(uri) as c:
        assert c.execute("SELECT count(*), max(name) FROM store.items").fetchone() == (
            1000, "item 999")
        assert c.execute("SELECT count(*), min(id) FROM orders").fetchone() == (250, 500)
        assert c.execute("SELECT nextval('order_no')").fetchone() == (750,)
        assert c.execute("SELECT qty FROM order_totals WHERE item = 13").fetchone() == (6,)
        assert c.execute("SELECT count(*) FROM store.items WHERE tag = 'x'").fetchone() == (
            1000,)                                   # citext, the extension, came along
        # roles were mapped to the branch's owner, which owns what was restored
        assert c.execute("SELECT polname, polroles::regrole[]::text[] FROM pg_policy"
                         ).fetchone() == ("own_orders", ["authenticated"])
        assert c.execute("SELECT rolcanlogin, pg_has_role('anon', 'pg_read_all_data', "
                         "'member') FROM pg_roles WHERE rolname = 'anon'"
                         ).fetchone() == (False, False)
        owner = c.execute("SELECT current_user").fetchone()
        assert c.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'items'"
                         ).fetchone() == owner


def test_import_into_a_new_branch_through_the_api(argon_env: ArgonEnv, project: str,
                                                  source: tuple[PgServer, str]) -> None:
    _server, uri = source
    r = argon_env.api("POST", f"/projects/{project}/import", json={
        "source": {"connection_uri": uri}, "branch": {"name": "imported"}})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["database_name"] == "shop"
    counts = {(t["schema"], t["table"]): (t["source_rows"], t["target_rows"])
              for t in out["tables"]}
    assert counts == {("public", "orders"): (250, 250), ("store", "items"): (1000, 1000)}
    assert any("privilege" in s for s in out["skipped"]), out["skipped"]
    assert set(out["roles_created"]) == {"anon", "authenticated", "app_owner"}
    assert branches(argon_env, project)["imported"] == out["branch_id"]
    check_copied(argon_env, branch_uri(argon_env, project, out["branch_id"], "shop",
                                       out["role_name"]))


def test_import_into_a_new_project_with_the_cli(argon_env: ArgonEnv,
                                                source: tuple[PgServer, str]) -> None:
    _server, uri = source
    name = f"imported-{uuid.uuid4().hex[:6]}"
    res = argon_env.cli("import", uri, "--project-name", name)
    assert "pg_restore" in res.stderr and "store.items: 1000 rows" in res.stdout, res
    projects = {p["name"]: p["id"] for p in argon_env.api("GET", "/projects").json()[
        "projects"]}
    pid = projects[name]
    try:
        main = branches(argon_env, pid)["main"]
        check_copied(argon_env, branch_uri(argon_env, pid, main, "shop", "shop_owner"))
    finally:
        argon_env.api("DELETE", f"/projects/{pid}")


def test_failed_imports_leave_nothing(argon_env: ArgonEnv, project: str,
                                      source: tuple[PgServer, str]) -> None:
    server, uri = source
    before_branches = branches(argon_env, project)
    before_projects = len(argon_env.api("GET", "/projects").json()["projects"])
    # an unreachable source: refused before anything is made
    bad = "postgresql://dumper:dump-pw@127.0.0.1:1/shop"
    res = argon_env.cli("import", bad, "--project-id", project, check=False)
    assert res.returncode == 1 and "cannot connect to the source database" in res.stderr
    r = argon_env.api("POST", "/projects/import", json={"source": {"connection_uri": "nope://x"}})
    assert r.status_code == 400, r.text
    # a restore that fails half-way (a policy for a superuser role, which Argon cannot
    # make): the new branch and the new project are deleted again
    with server.connect(dbname="shop") as c:
        c.execute("CREATE ROLE platform_admin SUPERUSER NOLOGIN")
        c.execute("CREATE POLICY admin ON orders TO platform_admin USING (true)")
    r = argon_env.api("POST", f"/projects/{project}/import", json={
        "source": {"connection_uri": uri}, "branch": {"name": "half"}})
    assert r.status_code == 400, r.text
    assert "pg_restore failed" in r.json()["message"]
    assert 'role "platform_admin" does not exist' in r.json()["message"]
    res = argon_env.cli("import", uri, "--json", check=False)
    assert res.returncode == 1 and "pg_restore failed" in res.stderr
    assert branches(argon_env, project) == before_branches
    assert len(argon_env.api("GET", "/projects").json()["projects"]) == before_projects
