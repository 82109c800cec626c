"""What each MCP tool does: a translation to the control services (as the API routes do) and
back to Neon's result texts.  Objects are serialised with the API's own mapping, so they
have the Neon API shapes.  SQL runs through ``SqlRunner`` as a role of the branch (the
database's owner unless another is named), never as ``cloud_admin``.

Every handler takes the tool's ``params`` and returns the texts of the result; an
``ArgonError`` (or ``ToolError``) becomes a tool error with its message.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from argon.api import mapping as mp
from argon.control.requests import BranchCreate, EndpointCreate, ProjectCreate
from argon.control.safe_migrations import MigrationFailed, SafeMigrations
from argon.control.sql_runner import SqlOutcome, SqlRequest, StatementResult
from argon.errors import ArgonError, InvalidInput

MAX_ROWS = 500                 # rows an agent gets back from one call
MAX_BYTES = 1024 * 1024        # and bytes
LIST_LIMIT_MAX = 400


class ToolError(Exception):
    """A clear refusal of a tool call (bad arguments, a feature Argon lacks)."""


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


def _model(m: Any) -> Any:
    return m.model_dump(mode="json", exclude_none=True)


def _rows(res: StatementResult) -> list[dict[str, Any]]:
    names = [c.name for c in res.columns]
    return [dict(zip(names, row, strict=True)) for row in res.rows]


def _sql_failure(out: SqlOutcome) -> ToolError:
    e = out.error
    assert e is not None
    text = f"ERROR: {e.message} (SQLSTATE {e.sqlstate})"
    if e.detail:
        text += f"\nDETAIL: {e.detail}"
    if e.hint:
        text += f"\nHINT: {e.hint}"
    return ToolError(text)


class Handlers:
    def __init__(self, services: Any, proxy_host: str, *, read_only: bool = False) -> None:
        self.s, self.proxy_host, self.read_only = services, proxy_host, read_only
        self.migrations: SafeMigrations = migrations_of(services)

    # -- helpers --------------------------------------------------------------------------

    def _branch(self, project_id: str, branch: str | None) -> Any:
        if branch:
            return self.s.branches.get(project_id, branch)
        return self.s.branches.get(project_id, self.s.projects.get(project_id).default_branch_id)

    def _target(self, p: dict[str, Any]) -> tuple[str, str, str]:
        """(project id, branch id, database) with Neon's defaults."""
        branch = self._branch(p["projectId"], p.get("branchId"))
        db = p.get("databaseName") or self.migrations.default_database(p["projectId"], branch.id)
        return p["projectId"], branch.id, db

    def _run(self, project_id: str, branch_id: str, db: str, sql: str, *,
             role: str | None = None, explain: str | None = None) -> SqlOutcome:
        return self.s.sql.run(SqlRequest(project_id, branch_id, db, sql, role=role,
                                         explain=explain, max_rows=MAX_ROWS,
                                         max_bytes=MAX_BYTES, read_only=self.read_only))

    @staticmethod
    def _checked(out: SqlOutcome) -> SqlOutcome:
        if out.error is not None:
            raise _sql_failure(out)
        return out

    @staticmethod
    def _with_cut(texts: list[str], out: SqlOutcome) -> list[str]:
        if out.truncated and out.truncated_message:
            texts.append(f"Result cut: {out.truncated_message}")
        return texts

    def _limit(self, p: dict[str, Any], default: int = 10) -> int:
        limit = p.get("limit", default)
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise ToolError(f"limit must be from 1 to {LIST_LIMIT_MAX}, not {limit}")
        return int(limit)

    def _org(self) -> dict[str, Any]:
        org = self.s.organization.list()[0]
        return {"name": org.get("name"), "id": org.get("id")}

    # -- projects and organizations -------------------------------------------------------

    def list_projects(self, p: dict[str, Any]) -> list[str]:
        page = self.s.projects.list(search=p.get("search"), cursor=p.get("cursor"),
                                    limit=self._limit(p))
        projects = [_model(mp.project_list_item(x, self.proxy_host)) for x in page.items]
        return [_dump({"organization": self._org(), "projects": projects})]

    def list_organizations(self, p: dict[str, Any]) -> list[str]:
        orgs = self.s.organization.list()
        q = (p.get("search") or "").lower()
        if q:
            orgs = [o for o in orgs if q in str(o.get("name", "")).lower()
                    or q in str(o.get("id", "")).lower()]
        return [_dump(orgs)]

    def list_shared_projects(self, p: dict[str, Any]) -> list[str]:
        self._limit(p)
        return [_dump({"shared_projects": [], "count": 0})]

    def create_project(self, p: dict[str, Any]) -> list[str]:
        created = self.s.projects.create(ProjectCreate(name=p.get("name")))
        db, branch = created.databases[0], created.branch
        uri = created.connection_uris[0].connection_uri if created.connection_uris else ""
        role = created.roles[0].name if created.roles else ""
        org = self._org()
        return ["\n".join([
            f"Your Argon project is created in organization \"{org['name']}\" and is ready.",
            f"The project_id is \"{created.project.id}\"",
            f"The branch name is \"{branch.name}\" (ID: {branch.id})",
            f"There is one database available on this branch, called \"{db.name}\",",
            "but you can create more databases using SQL commands.", "",
            "Connection string details:", f"URI: {uri}", f"Project ID: {created.project.id}",
            f"Branch ID: {branch.id}", f"Database: {db.name}", f"Role: {role}", "",
            "You can use this connection string with any PostgreSQL client to connect to your "
            "database.", "For example, with psql:", f"psql \"{uri}\""])]

    def delete_project(self, p: dict[str, Any]) -> list[str]:
        self.s.projects.delete(p["projectId"])
        return [f"Project deleted successfully.\nProject ID: {p['projectId']}"]

    def describe_project(self, p: dict[str, Any]) -> list[str]:
        project = self.s.projects.get(p["projectId"])
        branches = [_model(mp.branch(b)) for b in self.s.branches.list(project.id).items]
        return [f"This project is called {project.name}.",
                "It contains the following branches (use the describe branch tool to learn "
                f"more about each branch): {_dump(branches)}"]

    # -- SQL ------------------------------------------------------------------------------

    def run_sql(self, p: dict[str, Any]) -> list[str]:
        out = self._checked(self._run(*self._target(p), p["sql"]))
        rows = next((_rows(r) for r in reversed(out.results) if r.columns), [])
        return self._with_cut([_dump(rows)], out)

    def run_sql_transaction(self, p: dict[str, Any]) -> list[str]:
        stmts = [s.strip().rstrip(";") for s in p["sqlStatements"] if s.strip()]
        if not stmts:
            raise ToolError("sqlStatements is empty")
        # One simple-protocol query: Postgres runs it as one transaction (all or nothing).
        out = self._checked(self._run(*self._target(p), ";\n".join(stmts)))
        return self._with_cut([_dump([_rows(r) for r in out.results])], out)

    def get_database_tables(self, p: dict[str, Any]) -> list[str]:
        project, branch, db = self._target(p)
        out = []
        for schema in self.s.tables.tables(project, branch, db, None):
            for t in schema["tables"]:
                out.append({"table_schema": schema["name"], "table_name": t["name"],
                            "table_type": t["kind"]})
        return [_dump(out)]

    def describe_table_schema(self, p: dict[str, Any]) -> list[str]:
        from argon.control.table_browser import TableRef  # noqa: PLC0415

        project, branch, db = self._target(p)
        schema, _, table = p["tableName"].rpartition(".")
        info = self.s.tables.describe(TableRef(project, branch, db, None, schema or "public",
                                               table))
        return [_dump(asdict(info))]

    def explain_sql_statement(self, p: dict[str, Any]) -> list[str]:
        explain = "analyze" if p.get("analyze", True) else "plan"
        out = self._checked(self._run(*self._target(p), p["sql"], explain=explain))
        return [_dump([{"QUERY PLAN": out.explain}])]

    def list_slow_queries(self, p: dict[str, Any]) -> list[str]:
        project, branch, db = self._target(p)
        limit = self._limit(p)
        min_ms = float(p.get("minExecutionTime", 0))
        has = self._checked(self._run(project, branch, db, "SELECT 1 FROM pg_extension "
                                      "WHERE extname = 'pg_stat_statements'"))
        if not has.results or not has.results[0].rows:
            raise ToolError(f"pg_stat_statements is not installed in database {db!r}: run "
                            "CREATE EXTENSION pg_stat_statements there (it is preloaded on "
                            "every Argon compute), run your workload, then ask again")
        out = self._checked(self._run(project, branch, db, f"""
            SELECT query, calls, total_exec_time, mean_exec_time, rows,
                   shared_blks_hit, shared_blks_read, shared_blks_written,
                   shared_blks_dirtied, temp_blks_read, temp_blks_written,
                   wal_records, wal_fpi, wal_bytes::text
            FROM pg_stat_statements
            WHERE query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%EXPLAIN%'
              AND mean_exec_time >= {min_ms}
            ORDER BY mean_exec_time DESC LIMIT {limit}"""))
        slow = [{"query": r["query"], "calls": r["calls"],
                 "total_exec_time_ms": r["total_exec_time"],
                 "mean_exec_time_ms": r["mean_exec_time"], "rows": r["rows"],
                 "shared_blocks": {"hit": r["shared_blks_hit"], "read": r["shared_blks_read"],
                                   "written": r["shared_blks_written"],
                                   "dirtied": r["shared_blks_dirtied"]},
                 "temp_blocks": {"read": r["temp_blks_read"], "written": r["temp_blks_written"]},
                 "wal": {"records": r["wal_records"], "full_page_images": r["wal_fpi"],
                         "bytes": r["wal_bytes"]}}
                for r in _rows(out.results[-1])]
        return [_dump({"slow_queries": slow, "total_queries_found": len(slow)})]

    # -- branches and computes ------------------------------------------------------------

    def create_branch(self, p: dict[str, Any]) -> list[str]:
        created = self.s.branches.create(p["projectId"], BranchCreate(
            name=p.get("branchName"), endpoints=[EndpointCreate(type="read_write")]))
        b = created.branch
        return ["\n".join(["Branch created successfully.", f"Project ID: {b.project_id}",
                           f"Branch ID: {b.id}", f"Branch name: {b.name}",
                           f"Parent branch: {b.parent_id}"])]

    def describe_branch(self, p: dict[str, Any]) -> list[str]:
        project, branch, db = self._target(p)
        b = self.s.branches.get(project, branch)
        objects = json.loads(self.get_database_tables(
            {"projectId": project, "branchId": branch, "databaseName": db})[0])
        return ["Database Structure:\n" + _dump({"branch": _model(mp.branch(b)),
                                                  "database": db, "objects": objects})]

    def delete_branch(self, p: dict[str, Any]) -> list[str]:
        self.s.branches.delete(p["projectId"], p["branchId"])
        return ["\n".join(["Branch deleted successfully.", f"Project ID: {p['projectId']}",
                           f"Branch ID: {p['branchId']}"])]

    def reset_from_parent(self, p: dict[str, Any]) -> list[str]:
        branch = self.s.branches.get(p["projectId"], p["branchIdOrName"])
        if branch.parent_id is None:
            raise ToolError(f"branch {branch.name} has no parent to reset from")
        parent = self.s.branches.get(p["projectId"], branch.parent_id)
        keep = p.get("preserveUnderName")
        self.s.branches.reset_to_parent(p["projectId"], branch.id, keep)
        return ["\n".join(["Branch reset from parent successfully.",
                           f"Project: {p['projectId']}", f"Branch:  {p['branchIdOrName']}",
                           f"Reset to parent branch: {parent.name} ({parent.id})",
                           f"Previous state preserved as: {keep}" if keep
                           else "Previous state was not preserved"])]

    def list_branch_computes(self, p: dict[str, Any]) -> list[str]:
        project = p.get("projectId")
        if not project:
            items = self.s.projects.list(limit=2).items
            if len(items) != 1:
                raise ToolError("Please provide a project ID or ensure you have only one "
                                "project in your account.")
            project = items[0].id
        eps = (self.s.endpoints.list_for_branch(project, p["branchId"]) if p.get("branchId")
               else self.s.endpoints.list(project))
        out = []
        for e in mp.endpoints(eps):
            d = _model(e)
            lo, hi = d.get("autoscaling_limit_min_cu"), d.get("autoscaling_limit_max_cu")
            out.append({"compute_id": d["id"], "compute_type": d["type"],
                        "compute_size": f"{lo}-{hi}" if lo != hi else lo,
                        "last_active": d.get("last_active"), **d})
        return [_dump(out)]

    def get_connection_string(self, p: dict[str, Any]) -> list[str]:
        project = p["projectId"]
        if p.get("computeId"):
            branch_id = self.s.endpoints.get(project, p["computeId"]).branch_id
        else:
            branch_id = self._branch(project, p.get("branchId")).id
        db = p.get("databaseName") or self.migrations.default_database(project, branch_id)
        role = p.get("roleName") or self.s.databases.get(project, branch_id, db).owner_name
        uri = self.s.projects.connection_uri(project, branch_id=branch_id,
                                             endpoint_id=p.get("computeId"),
                                             database_name=db, role_name=role)
        return ["\n".join([
            "Connection string details:", f"URI: {uri.connection_uri}",
            f"Project ID: {project}", f"Database: {db}", f"Role: {role}",
            f"Branch ID: {p['branchId']}" if p.get("branchId") else "Using default branch",
            f"Compute ID: {p['computeId']}" if p.get("computeId") else "Using default compute",
            "", "You can use this connection string with any PostgreSQL client to connect to "
            "your database."])]

    def compare_database_schema(self, p: dict[str, Any]) -> list[str]:
        diff = self.s.branches.compare_schema(p["projectId"], p["branchId"], p["databaseName"])
        return [_dump({"diff": diff.diff})]

    # -- safe migrations and query tuning -------------------------------------------------

    def prepare_database_migration(self, p: dict[str, Any]) -> list[str]:
        try:
            prep = self.migrations.prepare(p["projectId"], p["migrationSql"],
                                           database=p.get("databaseName"))
        except MigrationFailed as exc:
            raise ToolError(exc.message) from None
        m = prep.migration
        result = [_rows(r) for r in prep.outcome.results]
        return [f"""<status>Migration created successfully in temporary branch</status>
<details>
  <migration_id>{m.id}</migration_id>
  <temporary_branch>
    <name>{m.temp_branch_name}</name>
    <id>{m.temp_branch_id}</id>
  </temporary_branch>
</details>
<execution_result>{_dump(result)}</execution_result>
<schema_diff>{prep.schema_diff}</schema_diff>

<next_actions>
You MUST follow these steps:
  1. Test this migration using `run_sql` tool on branch `{m.temp_branch_name}`
     (branchId {m.temp_branch_id})
  2. Verify the changes meet your requirements
  3. If satisfied, use `complete_database_migration` with migration_id: {m.id}
</next_actions>"""]

    def complete_database_migration(self, p: dict[str, Any]) -> list[str]:
        try:
            done = self.migrations.complete(p["migrationId"])
        except MigrationFailed as exc:
            raise ToolError(exc.message) from None
        m = done.migration
        deleted = _model(mp.branch(self.s.branches.get(m.project_id, m.target_branch_id)))
        deleted.update(id=m.temp_branch_id, name=m.temp_branch_name,
                       parent_id=m.target_branch_id)
        result = [_rows(r) for r in done.outcome.results] if done.outcome else []
        return [f"Result: {_dump({'deletedBranch': deleted, 'migrationResult': result})}"]

    def prepare_query_tuning(self, p: dict[str, Any]) -> list[str]:
        from argon.control.table_browser import TableRef  # noqa: PLC0415

        project, db, role = p["projectId"], p["databaseName"], p.get("roleName")
        # The temporary branch starts as a copy: the query's plan is taken there.
        prep = self.migrations.prepare(project, "SELECT 1", database=db, role=role,
                                       kind="tuning")
        m = prep.migration
        plan = self._checked(self._run(project, m.temp_branch_id, db, p["sql"], role=role,
                                       explain="analyze")).explain
        names = sorted({n["Relation Name"] for n in _plan_nodes(plan) if "Relation Name" in n})
        schemas = [asdict(self.s.tables.describe(TableRef(project, m.temp_branch_id, db, role,
                                                          "public", n))) for n in names]
        return [_dump({"tuningId": m.id, "databaseName": db, "projectId": project,
                       "temporaryBranch": _model(mp.branch(
                           self.s.branches.get(project, m.temp_branch_id))),
                       "executionPlan": [{"QUERY PLAN": plan}], "tableSchemas": schemas,
                       "sql": p["sql"]})]

    def complete_query_tuning(self, p: dict[str, Any]) -> list[str]:
        mig = self.migrations.get(p["tuningId"])
        if mig.temp_branch_id != p["temporaryBranchId"]:
            raise ToolError(f"temporaryBranchId {p['temporaryBranchId']!r} is not the branch of "
                            f"tuning {p['tuningId']!r} ({mig.temp_branch_id})")
        stmts = [s.strip().rstrip(";") for s in p["suggestedSqlStatements"] if s.strip()]
        apply = bool(p.get("applyChanges", False)) and bool(stmts)
        delete = p.get("shouldDeleteTemporaryBranch", True)
        try:
            done = self.migrations.complete(mig.id, sql=";\n".join(stmts), apply=apply,
                                            target_branch_id=p.get("branchId"),
                                            delete_branch=delete)
        except MigrationFailed as exc:
            raise ToolError(exc.message) from None
        return [_dump({"appliedChanges": stmts if apply else [],
                       "results": [_rows(r) for r in done.outcome.results] if done.outcome
                       else [], "deletedTemporaryBranch": done.deleted_branch,
                       "message": "changes applied" if apply else "no changes applied"})]

    # -- search, fetch, Neon Auth ---------------------------------------------------------

    def search(self, p: dict[str, Any]) -> list[str]:
        q = p["query"].lower()
        if len(q) < 3:
            raise ToolError("query must be at least 3 characters")
        found: list[dict[str, Any]] = []
        for org in self.s.organization.list():
            if q in str(org.get("name", "")).lower() or q in str(org.get("id", "")).lower():
                found.append({"id": f"org:{org['id']}", "title": org.get("name"),
                              "url": "/console/#/projects", "type": "organization"})
        for proj in self.s.projects.list(limit=LIST_LIMIT_MAX).items:
            if q in proj.name.lower() or q in proj.id.lower():
                found.append({"id": f"project:{proj.id}", "title": proj.name,
                              "url": f"/console/#/projects/{proj.id}/branches",
                              "type": "project"})
            for b in self.s.branches.list(proj.id).items:
                if q in b.name.lower() or q in b.id.lower():
                    found.append({"id": f"branch:{proj.id}/{b.id}", "title": b.name,
                                  "url": f"/console/#/projects/{proj.id}/branches/{b.id}",
                                  "type": "branch"})
        return [_dump(found)]

    def fetch(self, p: dict[str, Any]) -> list[str]:
        kind, _, ref = p["id"].partition(":")
        if kind == "org":
            return [_dump(self.s.organization.get(ref))]
        if kind == "project":
            return self.describe_project({"projectId": ref})
        if kind == "branch" and "/" in ref:
            project, branch = ref.split("/", 1)
            return [_dump(_model(mp.branch(self.s.branches.get(project, branch))))]
        raise ToolError(f"id {p['id']!r} is not one search returns (org:..., project:..., "
                        "branch:<project>/<branch>)")

    def provision_neon_auth(self, p: dict[str, Any]) -> list[str]:
        raise ToolError("Neon Auth is not available in Argon: there is no managed "
                        "authentication service to provision. Use your own auth library with "
                        "the project's database.")


def _plan_nodes(plan: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    stack = [plan]
    while stack:
        x = stack.pop()
        if isinstance(x, list):
            stack.extend(x)
        elif isinstance(x, dict):
            out.append(x)
            stack.extend(v for k, v in x.items() if k in ("Plan", "Plans"))
    return out


def migrations_of(services: Any) -> SafeMigrations:
    """One migration store per services container (prepare and complete may come over two
    HTTP requests)."""
    store = getattr(services, "_mcp_migrations", None)
    if store is None:
        store = SafeMigrations(services)
        services._mcp_migrations = store
    return store


def run_tool(handlers: Handlers, name: str, params: dict[str, Any]) -> list[str]:
    try:
        return getattr(handlers, name)(params)  # type: ignore[no-any-return]
    except ArgonError as exc:
        raise ToolError(exc.message) from None
    except InvalidInput as exc:   # pragma: no cover - an ArgonError too
        raise ToolError(str(exc)) from None
