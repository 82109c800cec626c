"""Import an existing Postgres into a new Argon project or a new branch: ``pg_dump -Fc``
of the source, then ``pg_restore`` into the new branch through Argon's proxy as the
branch's owner, with the usual dump frictions handled and the rows counted on both sides.

Frictions (what a Heroku/Supabase/RDS dump brings): ownership goes to the branch's owner
(``--no-owner``: every object ends up owned by the owner role); the source's other
non-superuser roles are made as bare NOLOGIN roles so that row-level security policies
that name them restore;
privileges (GRANT/REVOKE, incl. Supabase's ``ACL SCHEMA public`` for
``pg_database_owner``) are skipped (``--no-acl``) and counted in the report; the
``public`` schema, which already exists, is not created again; extensions the target
does not have are reported and the restore stops on the first object that needs them.
Anything that fails after the target was made deletes it again: nothing half-made stays.
With ``sync`` only the schema is copied and ``import_sync.py`` subscribes the branch to
the source (the rows come by logical replication, until the cutover).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from argon.control import import_sync
from argon.control.branches import BranchService
from argon.control.catalog import DatabaseService
from argon.control.models import Operation, OperationStatus
from argon.control.operations import OperationService
from argon.control.projects import ProjectService
from argon.control.requests import BranchCreate, DatabaseCreate, EndpointCreate, ProjectCreate
from argon.control.runtime import EndpointRuntime
from argon.control.sqlexec import SYSTEM_ROLES
from argon.errors import ArgonError, InvalidInput
from argon.pg import PgInstall, discover_installs

logger = logging.getLogger(__name__)

Progress = Callable[[str, str], None]          # (phase, message)
SOURCE_CONNECT_TIMEOUT = 15
# TOC entries never restored: the schema exists already; its comment and ACL belong to
# the source's owner (Supabase: pg_database_owner) and fail under --no-owner.
_SKIPPED_TOC = re.compile(r"^\d+; \d+ \d+ (SCHEMA|COMMENT|ACL) - (SCHEMA )?public\b")


@dataclass(frozen=True)
class ImportRequest:
    source_uri: str
    project_name: str | None = None     # for a new project
    branch_name: str | None = None      # for a new branch in an existing project
    parent_id: str | None = None
    database_name: str | None = None    # target database (default: the source's name)
    jobs: int = 2                       # parallel pg_restore jobs
    sync: bool = False                  # schema only, then a subscription (import_sync.py)
    publication: str | None = None      # with sync: the source's publication to use


@dataclass(frozen=True)
class TableCount:
    schema: str
    table: str
    source_rows: int
    target_rows: int


@dataclass
class ImportResult:
    project_id: str
    branch_id: str
    database_name: str
    role_name: str
    source_version: int
    tools_version: int
    dump_bytes: int = 0
    seconds: float = 0.0
    tables: list[TableCount] = field(default_factory=list)
    roles_created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    sync: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Source:
    conninfo: str         # without the password
    password: str | None
    dbname: str
    major: int
    roles: tuple[str, ...] = ()          # non-superuser roles, besides the one dumping
    superusers: tuple[str, ...] = ()


class ImportFailed(InvalidInput):
    """The source could not be copied (the tool's own words); the target is gone again."""

    code = "IMPORT_FAILED"


def _quiet(_phase: str, _message: str) -> None:
    pass


class ImportService:
    def __init__(self, projects: ProjectService, branches: BranchService,
                 databases: DatabaseService, operations: OperationService,
                 runtime: EndpointRuntime, work_dir: Path) -> None:
        self.projects, self.branches, self.databases = projects, branches, databases
        self.operations, self.runtime, self.work_dir = operations, runtime, work_dir

    def run(self, project_id: str | None, req: ImportRequest,
            progress: Progress = _quiet) -> ImportResult:
        """Into a new branch of ``project_id``, or a new project when it is None."""
        if req.jobs < 1 or req.jobs > 16:
            raise InvalidInput("jobs must be between 1 and 16")
        if req.publication is not None and not req.sync:
            raise InvalidInput("a publication is only used with sync")
        source = probe_source(req.source_uri)
        tools = tools_for(source.major)
        plan = import_sync.check_source(req.source_uri, req.publication) if req.sync else None
        progress("source", f"connected: PostgreSQL {source.major}, database {source.dbname}; "
                 f"pg_dump/pg_restore {tools.version}")
        target_db = req.database_name or (source.dbname if source.dbname != "postgres"
                                          else "neondb")
        undo: Callable[[], None]
        started = time.monotonic()
        if project_id is None:
            created = self.projects.create(ProjectCreate(
                name=req.project_name, database_name=target_db,
                pg_version=source.major if source.major in _majors() else None))
            project_id, branch_id = created.project.id, created.branch.id
            endpoint_id = created.endpoints[0].id
            self._wait(created.operations)
            pid = project_id

            def undo() -> None:
                self._wait(self.projects.delete(pid).operations)
            role = created.roles[0].name
        else:
            made = self.branches.create(project_id, BranchCreate(
                name=req.branch_name, parent_id=req.parent_id,
                endpoints=[EndpointCreate(type="read_write")]))
            branch_id = made.branch.id
            endpoint_id = made.endpoints[0].id
            self._wait(made.operations)
            pid, bid = project_id, branch_id

            def undo() -> None:
                self._wait(self.branches.delete(pid, bid).operations)
            dbs = {d.name: d for d in made.databases}
            role = (dbs.get("neondb") or made.databases[0]).owner_name if made.databases \
                else made.roles[0].name
            if target_db not in dbs:
                self._wait(self.databases.create(project_id, branch_id, DatabaseCreate(
                    target_db, role)).operations)
        progress("target", f"created branch {branch_id} in project {project_id}; "
                 f"restoring into database {target_db} as {role}")
        result = ImportResult(project_id, branch_id, target_db, role, source.major,
                              tools.version)
        try:
            password = conninfo_to_dict(self.projects.connection_uri(
                project_id, branch_id=branch_id, database_name=target_db,
                role_name=role).connection_uri).get("password")
            # Like the console's SQL runner: as the owner role, over the compute's socket
            # (the embedded libpq has no TLS for the proxy), kept awake meanwhile.
            running = self.runtime.ensure_running(endpoint_id)
            self.runtime.session_started(endpoint_id)
            try:
                target = make_conninfo(host=running.host, port=running.port,
                                       dbname=target_db, user=role, passfile=os.devnull)
                target_login = make_conninfo(target, password=str(password or ""))
                self._copy(source, tools, target, str(password or ""), target_login,
                           req.jobs, result, progress, schema_only=plan is not None)
                if plan is not None:
                    self._start_sync(plan, result, target_login, progress)
                else:
                    result.tables = count_rows(source, target_login)
            finally:
                self.runtime.session_ended(endpoint_id)
            wrong = [c for c in result.tables if c.source_rows != c.target_rows]
            if wrong:
                raise ImportFailed("row counts differ after the restore: " + ", ".join(
                    f"{c.schema}.{c.table} {c.source_rows} vs {c.target_rows}"
                    for c in wrong[:10]))
        except BaseException:
            progress("cleanup", f"import failed: deleting {branch_id}")
            try:
                undo()
            except Exception:   # the import's own error is the one to report
                logger.exception("could not delete the half-made import target")
            raise
        result.seconds = round(time.monotonic() - started, 3)
        progress("done", f"{len(result.tables)} tables, "
                 f"{sum(c.target_rows for c in result.tables)} rows in {result.seconds} s")
        return result

    def _start_sync(self, plan: import_sync.SyncPlan, result: ImportResult,
                    target_login: str, progress: Progress) -> None:
        if plan.no_identity:
            result.skipped.append("UPDATE and DELETE of tables without a primary key or "
                                  "replica identity fail on the source while it publishes "
                                  "them: " + ", ".join(plan.no_identity[:10]))
        name = import_sync.start(plan, result.branch_id, target_login)
        progress("sync", f"subscription {name} on the branch, publication "
                 f"{plan.publication or name} on the source"
                 + ("" if plan.publication else " (made by Argon)") + "; copying the rows; "
                 "the project's enable_logical_replication is not needed by a subscriber: "
                 "left as it was, no compute restarted")
        result.sync = {"subscription": name, "publication": plan.publication or name,
                       "publication_made_by_argon": plan.publication is None}

    def _wait(self, ops: list[Operation], timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        for op in ops:
            while True:
                status = self.operations.get(op.project_id, op.id).status
                if status in (OperationStatus.FINISHED, OperationStatus.SKIPPED,
                              OperationStatus.CANCELLED):
                    break
                if status in (OperationStatus.FAILED, OperationStatus.ERROR):
                    raise ArgonError(f"operation {op.action} failed")
                if time.monotonic() > deadline:
                    raise ArgonError(f"operation {op.action} did not finish in {timeout} s")
                time.sleep(0.1)

    def _copy(self, source: _Source, tools: PgInstall, target: str, password: str,
              target_login: str, jobs: int, result: ImportResult, progress: Progress,
              *, schema_only: bool = False) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="import-", dir=self.work_dir))
        try:
            dump, toc = tmp / "source.dump", tmp / "restore.list"
            env = {**os.environ, "PGCONNECT_TIMEOUT": str(SOURCE_CONNECT_TIMEOUT)}
            if source.password is not None:
                env["PGPASSWORD"] = source.password
            _run([tools.bin("pg_dump"), "--format=custom", "--verbose", "--no-sync",
                  *(["--schema-only"] if schema_only else []), "--file", str(dump), "--dbname", source.conninfo], env, "pg_dump", progress)
            result.dump_bytes = dump.stat().st_size
            progress("dump", f"{result.dump_bytes} bytes dumped")
            listing = subprocess.run([tools.bin("pg_restore"), "--list", str(dump)],
                                     capture_output=True, text=True, check=True).stdout
            kept, skipped = filter_toc(listing)
            result.skipped = skipped
            toc.write_text("\n".join(kept) + "\n")
            result.roles_created = create_roles(source, target_login)
            if result.roles_created:
                progress("roles", "created as NOLOGIN roles without privileges: "
                         + ", ".join(result.roles_created))
            if source.superusers:
                result.skipped.append("superuser roles (Argon gives none): "
                                      + ", ".join(source.superusers))
            missing = missing_extensions(listing, target_login)
            if missing:
                result.skipped.append("extensions not available on Argon: "
                                      + ", ".join(missing))
            env["PGPASSWORD"] = password       # not in argv
            _run([tools.bin("pg_restore"), "--verbose", "--no-owner", "--no-acl",
                  "--exit-on-error", f"--jobs={jobs}", "--use-list", str(toc),
                  "--dbname", target, str(dump)], env, "pg_restore", progress)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _majors() -> set[int]:
    return {i.version for i in discover_installs()}


def tools_for(major: int) -> PgInstall:
    """pg_dump of the source's major (or the nearest newer one: pg_dump reads older
    servers, never newer ones)."""
    installs = sorted(discover_installs(), key=lambda i: i.version)
    for inst in installs:
        if inst.version >= major:
            return inst
    have = ", ".join(str(i.version) for i in installs) or "none"
    raise InvalidInput(f"the source runs PostgreSQL {major}, newer than the pg_dump Argon "
                       f"has ({have})")


def probe_source(uri: str) -> _Source:
    """Check that the source answers before anything is made (bad strings and unreachable
    servers are the user's input: 400, nothing created)."""
    try:
        params = conninfo_to_dict(uri)
    except psycopg.ProgrammingError as e:
        raise InvalidInput(f"invalid source connection string: {e}") from None
    password = params.pop("password", None)
    conninfo = make_conninfo("", **{k: v for k, v in params.items() if v is not None})
    try:
        with psycopg.connect(uri, connect_timeout=SOURCE_CONNECT_TIMEOUT,
                             autocommit=True) as conn:
            major = conn.info.server_version // 10000
            dbname = conn.info.dbname
            rows = conn.execute("SELECT rolname, rolsuper FROM pg_roles WHERE rolname !~ "
                                "'^pg_' AND rolname <> current_user ORDER BY 1").fetchall()
    except psycopg.Error as e:
        detail = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise InvalidInput(f"cannot connect to the source database: {detail}") from None
    return _Source(conninfo, None if password is None else str(password), dbname, major,
                   tuple(r[0] for r in rows if not r[1]), tuple(r[0] for r in rows if r[1]))


def filter_toc(listing: str) -> tuple[list[str], list[str]]:
    """The ``pg_restore --list`` lines to restore, and what was left out and why."""
    kept: list[str] = []
    acls = 0
    skipped: list[str] = []
    for line in listing.splitlines():
        if line.startswith(";") or not line.strip():
            continue
        if _SKIPPED_TOC.match(line):
            skipped.append(f"{line.split(' ', 3)[3]}: the public schema exists and is "
                           "owned by the branch's owner")
            continue
        if " ACL " in line or " DEFAULT ACL " in line:
            acls += 1
        kept.append(line)
    if acls:
        skipped.append(f"{acls} privilege entries (GRANT/REVOKE): roles are mapped to the "
                       "branch's owner, which owns every object")
    skipped.append("ownership (ALTER ... OWNER TO): every object is owned by the branch's "
                   "owner")
    return kept, skipped


def create_roles(source: _Source, target_login: str) -> list[str]:
    """The source's other roles, so that policies and later GRANTs that name them restore:
    made by the branch's owner as bare NOLOGIN roles (no membership, no attributes), never
    as members of neon_superuser, which would hand e.g. Supabase's ``anon`` every row."""
    made: list[str] = []
    with psycopg.connect(target_login, autocommit=True) as conn:
        have = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")}
        for name in source.roles:
            if name in have or name in SYSTEM_ROLES:
                continue
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
            made.append(name)
    return made


def missing_extensions(listing: str, target_uri: str) -> list[str]:
    wanted = re.findall(r"^\d+; \d+ \d+ EXTENSION - (\S+)", listing, re.MULTILINE)
    if not wanted:
        return []
    with psycopg.connect(target_uri, autocommit=True) as conn:
        have = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions")}
    return [w for w in wanted if w not in have]


_TABLES = ("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
           "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN "
           "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
           "AND NOT c.relispartition ORDER BY 1, 2")


def count_rows(source: _Source, target_uri: str) -> list[TableCount]:
    """Exact row counts of every ordinary table, on both sides."""
    src_uri = source.conninfo if source.password is None else make_conninfo(
        source.conninfo, password=source.password)
    with psycopg.connect(src_uri, autocommit=True) as s, \
            psycopg.connect(target_uri, autocommit=True) as t:
        return count_rows_between(s, t)


def count_rows_between(s: psycopg.Connection, t: psycopg.Connection) -> list[TableCount]:
    out: list[TableCount] = []
    for schema, table in s.execute(_TABLES).fetchall():
        count = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema),
                                                              sql.Identifier(table))
        src = s.execute(count).fetchone()
        dst = t.execute(count).fetchone()
        out.append(TableCount(schema, table, int(src[0]) if src else 0,
                              int(dst[0]) if dst else 0))
    return out


def _run(cmd: list[str], env: dict[str, str], name: str, progress: Progress) -> None:
    """Run a Postgres tool, its ``--verbose`` lines as progress; stderr tail on failure."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    tail: list[str] = []
    for line in proc.stderr:
        line = line.rstrip()
        tail = (tail + [line])[-20:]
        if line.startswith(f"{name}: ") and ("error" in line or "processing" in line
                                            or "dumping contents" in line
                                            or "creating" in line):
            progress(name, line[len(name) + 2:])
    if proc.wait() != 0:
        errors = [ln for ln in tail if "error" in ln.lower()] or tail[-3:]
        raise ImportFailed(f"{name} failed: " + " | ".join(errors[-3:]))


def summary(result: ImportResult) -> dict[str, Any]:
    """The result as the API returns it."""
    return {"project_id": result.project_id, "branch_id": result.branch_id,
            "database_name": result.database_name, "role_name": result.role_name,
            "source_pg_version": result.source_version, "tools_pg_version": result.tools_version,
            "dump_bytes": result.dump_bytes, "seconds": result.seconds,
            "tables": [c.__dict__ for c in result.tables],
            "roles_created": result.roles_created, "skipped": result.skipped,
            "sync": result.sync}
