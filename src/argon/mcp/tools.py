"""The tools Argon's MCP server lists: Neon's names, argument names, JSON types and required
arguments (tests/compat/contracts/neon_mcp_tools.json is the contract), with our own short
descriptions.  As on Neon, every tool takes its arguments under one object ``params``.
``read_only_safe`` tools stay listed in read-only mode (Neon's ``readOnlySafe``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_S, _N, _B, _A = "string", "number", "boolean", "array"
_PROJECT = ("projectId", _S, "The ID of the project")
_BRANCH_OPT = ("branchId", _S, "The ID of the branch; the project's default branch if omitted")
_DB_OPT = ("databaseName", _S, "The database; neondb or the branch's first database if omitted")


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    required: tuple[tuple[str, str, str], ...]
    optional: tuple[tuple[str, str, str], ...] = ()
    read_only_safe: bool = False
    destructive: bool = False

    def input_schema(self) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for name, kind, desc in self.required + self.optional:
            prop: dict[str, Any] = {"type": kind, "description": desc}
            if kind == _A:
                prop["items"] = {"type": "string"}
            props[name] = prop
        params: dict[str, Any] = {"type": "object", "properties": props,
                                  "additionalProperties": False}
        if self.required:
            params["required"] = [r[0] for r in self.required]
        return {"type": "object", "properties": {"params": params}, "required": ["params"],
                "additionalProperties": False}

    def annotations(self) -> dict[str, Any]:
        return {"title": self.name.replace("_", " ").capitalize(),
                "readOnlyHint": self.read_only_safe and not self.destructive,
                "destructiveHint": self.destructive, "openWorldHint": False}


TOOLS: tuple[Tool, ...] = (
    Tool("list_projects", "Lists the first 10 projects (raise `limit` for more); `search` "
         "filters by name or id.", (),
         (("cursor", _S, "Cursor of the previous page"), ("limit", _N, "1 to 400 (default 10)"),
          ("search", _S, "Part of a project name or id"), ("org_id", _S, "Organization id")),
         read_only_safe=True),
    Tool("list_organizations", "Lists the organizations this key reaches (one local "
         "organization in Argon).", (), (("search", _S, "Part of a name or id"),),
         read_only_safe=True),
    Tool("list_shared_projects", "Lists projects shared with this user (always none in Argon).",
         (), (("cursor", _S, "Cursor of the previous page"), ("limit", _N, "1 to 400"),
              ("search", _S, "Part of a project name or id")), read_only_safe=True),
    Tool("create_project", "Creates a project (a database with a default branch) and returns "
         "its connection string.", (),
         (("name", _S, "Name of the project"), ("org_id", _S, "Organization id (accepted)"))),
    Tool("delete_project", "Deletes a project with all its branches and data.", (_PROJECT,),
         destructive=True),
    Tool("describe_project", "Describes a project and lists its branches.", (_PROJECT,),
         read_only_safe=True),
    Tool("run_sql", "Runs one SQL statement (or several separated by semicolons) on a branch "
         "as the database's owner role; rows come back as JSON objects.",
         (("sql", _S, "The SQL to run"), _PROJECT), (_BRANCH_OPT, _DB_OPT),
         read_only_safe=True, destructive=True),
    Tool("run_sql_transaction", "Runs several SQL statements in one transaction on a branch "
         "as the database's owner role.",
         (("sqlStatements", _A, "The SQL statements to run"), _PROJECT),
         (_BRANCH_OPT, _DB_OPT), read_only_safe=True, destructive=True),
    Tool("describe_table_schema", "Describes a table: columns, types, defaults, indexes.",
         (("tableName", _S, "The table ([schema.]name)"), _PROJECT), (_BRANCH_OPT, _DB_OPT),
         read_only_safe=True),
    Tool("get_database_tables", "Lists the tables and views of a database.", (_PROJECT,),
         (_BRANCH_OPT, _DB_OPT), read_only_safe=True),
    Tool("create_branch", "Creates a branch (copy of the default branch's data) with a "
         "read-write compute.", (_PROJECT,), (("branchName", _S, "Name of the new branch"),)),
    Tool("prepare_database_migration", "Step 1 of a safe migration: applies the SQL on a new "
         "temporary branch of the default branch and returns its id, the result and the schema "
         "diff; the default branch is not changed.",
         (("migrationSql", _S, "The migration SQL (DDL)"), _PROJECT), (_DB_OPT,)),
    Tool("complete_database_migration", "Step 2 of a safe migration: applies the prepared SQL "
         "to the default branch in one transaction and deletes the temporary branch.",
         (("migrationId", _S, "The id prepare_database_migration returned"),),
         destructive=True),
    Tool("describe_branch", "Describes a branch: its databases' objects.",
         (_PROJECT, ("branchId", _S, "The ID of the branch")), (_DB_OPT,),
         read_only_safe=True),
    Tool("delete_branch", "Deletes a branch and its computes.",
         (_PROJECT, ("branchId", _S, "The ID of the branch")), destructive=True),
    Tool("reset_from_parent", "Resets a branch to its parent's current state, optionally "
         "keeping the old state under a new branch name.",
         (_PROJECT, ("branchIdOrName", _S, "Branch id or name")),
         (("preserveUnderName", _S, "Keep the current state as a branch of this name"),),
         destructive=True),
    Tool("get_connection_string", "Returns a Postgres connection string for a branch, "
         "compute, database and role.", (_PROJECT,),
         (_BRANCH_OPT, ("computeId", _S, "The compute (endpoint) id"), _DB_OPT,
          ("roleName", _S, "The role; the database owner if omitted")), read_only_safe=True),
    Tool("provision_neon_auth", "Neon Auth: not available in Argon (answers an error).",
         (_PROJECT,), (("database", _S, "The database"),)),
    Tool("explain_sql_statement", "Shows the execution plan of a statement (EXPLAIN, or "
         "EXPLAIN ANALYZE with `analyze`).", (("sql", _S, "The statement"), _PROJECT),
         (_BRANCH_OPT, _DB_OPT, ("analyze", _B, "Run it (EXPLAIN ANALYZE); default true")),
         read_only_safe=True),
    Tool("prepare_query_tuning", "Step 1 of query tuning: makes a temporary branch, returns the "
         "query's plan there and the schemas of the tables it reads.",
         (("sql", _S, "The query to tune"), ("databaseName", _S, "The database"), _PROJECT),
         (("roleName", _S, "The role; the database owner if omitted"),)),
    Tool("complete_query_tuning", "Step 2 of query tuning: optionally applies the chosen "
         "statements (e.g. CREATE INDEX) to the branch, and deletes the temporary branch.",
         (("suggestedSqlStatements", _A, "The statements to apply"),
          ("tuningId", _S, "The id prepare_query_tuning returned"),
          ("databaseName", _S, "The database"), _PROJECT,
          ("temporaryBranchId", _S, "The temporary branch's id")),
         (("applyChanges", _B, "Apply the statements to the branch (default false)"),
          ("roleName", _S, "The role"),
          ("shouldDeleteTemporaryBranch", _B, "Delete the temporary branch (default true)"),
          ("branchId", _S, "Branch to apply to; the default branch if omitted")),
         destructive=True),
    Tool("list_slow_queries", "Lists the slowest queries from pg_stat_statements (the "
         "extension must be created in the database).", (_PROJECT,),
         (_BRANCH_OPT, _DB_OPT, ("computeId", _S, "The compute (endpoint) id"),
          ("limit", _N, "How many (default 10)"),
          ("minExecutionTime", _N, "Only queries slower than this many ms on average")),
         read_only_safe=True),
    Tool("list_branch_computes", "Lists the computes (endpoints) of a project or branch.", (),
         (("projectId", _S, "The ID of the project; the only one if omitted"),
          ("branchId", _S, "The ID of the branch")), read_only_safe=True),
    Tool("compare_database_schema", "Compares a database's schema on a branch with its "
         "parent branch: a unified diff.",
         (_PROJECT, ("branchId", _S, "The ID of the branch"),
          ("databaseName", _S, "The database")), read_only_safe=True),
    Tool("search", "Searches organizations, projects and branches by name or id (3 characters "
         "at least); returns id, title, url and type.",
         (("query", _S, "The text to look for"),), read_only_safe=True),
    Tool("fetch", "Fetches an organization, project or branch by an id search returned.",
         (("id", _S, "An id from search"),), read_only_safe=True),
)

BY_NAME = {t.name: t for t in TOOLS}


def visible(read_only: bool) -> list[Tool]:
    return [t for t in TOOLS if t.read_only_safe or not read_only]


_TYPES: dict[str, tuple[type, ...]] = {_S: (str,), _N: (int, float), _B: (bool,), _A: (list,)}


def check_arguments(tool: Tool, arguments: dict[str, Any] | None) -> dict[str, Any]:
    """The ``params`` object, or ValueError naming what is wrong (before anything runs)."""
    args = arguments or {}
    extra = sorted(set(args) - {"params"})
    if extra:
        raise ValueError(f"{tool.name} takes its arguments under 'params', not {extra}")
    params = args.get("params", {})
    if not isinstance(params, dict):
        raise ValueError(f"{tool.name}: 'params' must be an object")
    known = {a[0]: a[1] for a in tool.required + tool.optional}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"{tool.name}: unknown argument(s) {unknown}; it takes "
                         f"{sorted(known)}")
    for name, _kind, _d in tool.required:
        if params.get(name) in (None, ""):
            raise ValueError(f"{tool.name}: argument {name!r} is required")
    for name, value in params.items():
        kind = known[name]
        ok = isinstance(value, _TYPES[kind]) and not (kind == _N and isinstance(value, bool))
        if value is not None and (not ok or (kind == _A and not all(
                isinstance(v, str) for v in value))):
            what = "a list of strings" if kind == _A else f"a {kind}"
            raise ValueError(f"{tool.name}: argument {name!r} must be {what}")
    return {k: v for k, v in params.items() if v is not None}
