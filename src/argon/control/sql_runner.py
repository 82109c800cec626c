"""Run SQL on a branch's database as one of its roles: the console's SQL editor and tables
view, and later the MCP server's ``run_sql``.

The session logs in as the role itself (with the password Argon keeps for it, over the
compute's unix socket), never as ``cloud_admin``: what a user sees is what that role may
see.  The compute is woken if it sleeps; with a timestamp the statement runs on a
temporary read-only compute at that past point (``TimeTravel``).  Results are bounded in
rows and bytes and say when they were cut; every statement has a timeout; a running
query can be cancelled by its id (a protocol cancel request for that session, which is
what ``pg_cancel_backend`` does).  Values are converted as ``/sql`` converts them (bool,
int2/4, floats and json become JSON; int8, numeric and the rest stay text).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import generators, pq
from psycopg.postgres import types as pg_types
from sqlalchemy import select

from argon.compute.process import NO_PASSFILE
from argon.control import lookup
from argon.control.context import ControlContext
from argon.control.runtime import EndpointRuntime
from argon.control.sqlexec import SYSTEM_ROLES
from argon.errors import ArgonError, Conflict, InvalidInput, NotFound
from argon.meta import tables as t
from argon.proxy.serverless.sql_values import BUILTIN_KINDS, Scalar, TypeKind, converter

if TYPE_CHECKING:
    from argon.control.branches import BranchService
    from argon.control.catalog import RoleService
    from argon.control.query_history import QueryHistory

logger = logging.getLogger(__name__)

APPLICATION_NAME = "argon-console"   # not Argon's own "argon": it counts as activity
DEFAULT_MAX_ROWS = 1000
MAX_ROWS_LIMIT = 10_000
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
MAX_BYTES_LIMIT = 50 * 1024 * 1024
DEFAULT_TIMEOUT_MS = 60_000
MAX_TIMEOUT_MS = 600_000
MAX_QUERY_CHARS = 1_000_000
_CHUNK_ROWS = 500
_ExecStatus = pq.ExecStatus
_ROWS = (_ExecStatus.TUPLES_CHUNK, _ExecStatus.SINGLE_TUPLE)
_ENDS = (_ExecStatus.TUPLES_OK, _ExecStatus.COMMAND_OK)
_COPIES = (_ExecStatus.COPY_IN, _ExecStatus.COPY_OUT, _ExecStatus.COPY_BOTH)


@dataclass(frozen=True)
class SqlRequest:
    project_id: str
    branch_id: str
    database: str
    query: str
    role: str | None = None              # default: the database's owner
    explain: str | None = None           # None, "plan" or "analyze"
    timestamp: datetime | None = None    # time travel: run at this past time
    query_id: str | None = None          # the caller's id, to cancel it while it runs
    max_rows: int = DEFAULT_MAX_ROWS
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    # the session's transactions are READ ONLY (MCP's read-only mode, as Neon's): a
    # statement that turns it off again can still write, so a guard, not a wall
    read_only: bool = False


@dataclass
class Column:
    name: str
    type: str        # Postgres' name for it, e.g. "integer", "character varying(20)"
    type_oid: int


@dataclass
class StatementResult:
    command: str
    row_count: int | None
    columns: list[Column] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    truncated: bool = False    # fewer rows here than the statement returned


@dataclass
class SqlError:
    sqlstate: str
    message: str
    position: int | None = None   # 1-based character offset in the query text
    detail: str | None = None
    hint: str | None = None
    severity: str | None = None


@dataclass
class SqlOutcome:
    query_id: str
    database: str
    role: str
    results: list[StatementResult]
    error: SqlError | None
    duration_ms: float
    truncated: bool = False
    truncated_message: str | None = None
    explain: Any = None            # EXPLAIN (FORMAT JSON)'s plan when asked for
    executed_sql: str = ""         # the text sent (with the EXPLAIN prefix, if any)
    at_time: datetime | None = None


@dataclass
class Limits:
    max_rows: int
    max_bytes: int
    rows: int = 0
    bytes: int = 0
    cut_rows: bool = False
    cut_bytes: bool = False


def _type_name(oid: int) -> str | None:
    info = pg_types.get(oid)
    if info is None:
        return None
    return info.name + "[]" if info.array_oid == oid else info.name


def _value_converter(oid: int) -> Callable[[str], Any]:
    """``/sql``'s conversion for this type, as a Python value (unknown types: text)."""
    kind = BUILTIN_KINDS.get(oid) or TypeKind(Scalar.TEXT)
    if kind.scalar is Scalar.TEXT and not kind.is_array:
        return lambda text: text
    to_json = converter(kind, False)
    return lambda text: json.loads(to_json(text))


def _bounded(value: int, low: int, high: int, what: str) -> int:
    if not low <= value <= high:
        raise InvalidInput(f"{what} must be from {low} to {high}, not {value}")
    return value


class _Collector:
    """Gathers one connection's results, keeping rows and bytes within the limits; rows
    past a limit are read and dropped so the statement still finishes normally."""

    def __init__(self, limits: Limits, encoding: str) -> None:
        self.limits, self.encoding = limits, encoding
        self.results: list[StatementResult] = []
        self.error: psycopg.Error | None = None
        self._current: StatementResult | None = None
        self._convs: list[Callable[[str], Any]] = []
        self._seen = 0

    def _begin(self, res: pq.abc.PGresult) -> StatementResult:
        if self._current is None:
            enc = self.encoding
            cols = [Column((res.fname(i) or b"").decode(enc), _type_name(res.ftype(i)) or "",
                           res.ftype(i)) for i in range(res.nfields)]
            self._convs = [_value_converter(c.type_oid) for c in cols]
            self._current = StatementResult(command="", row_count=None, columns=cols)
            self._seen = 0
        return self._current

    def rows(self, res: pq.abc.PGresult) -> None:
        cur = self._begin(res)
        lim, enc, get = self.limits, self.encoding, res.get_value
        self._seen += res.ntuples
        for r in range(res.ntuples):
            if lim.rows >= lim.max_rows or lim.bytes >= lim.max_bytes:
                lim.cut_rows |= lim.rows >= lim.max_rows
                lim.cut_bytes |= lim.bytes >= lim.max_bytes
                cur.truncated = True
                return
            raw = [get(r, c) for c in range(res.nfields)]
            size = 2 + sum(4 if v is None else len(v) + 3 for v in raw)
            if lim.bytes + size > lim.max_bytes:
                lim.cut_bytes, cur.truncated = True, True
                lim.bytes = lim.max_bytes
                return
            lim.bytes += size
            lim.rows += 1
            cur.rows.append([None if v is None else conv(v.decode(enc))
                             for v, conv in zip(raw, self._convs, strict=True)])

    def done(self, res: pq.abc.PGresult) -> None:
        cur = self._begin(res)
        if res.status == _ExecStatus.TUPLES_OK and res.ntuples:
            self.rows(res)   # a result that was not chunked
        tag = (res.command_status or b"").decode(self.encoding)
        name, _, count = tag.rpartition(" ")
        if count.isdigit():
            cur.command, cur.row_count = name.split(" ")[0], int(count)
        else:
            cur.command, cur.row_count = tag, None
        if cur.row_count is None and res.status == _ExecStatus.TUPLES_OK:
            cur.row_count = self._seen
        self.results.append(cur)
        self._current = None


class SqlRunner:
    def __init__(self, ctx: ControlContext, runtime: EndpointRuntime, branches: BranchService,
                 roles: RoleService, history: QueryHistory) -> None:
        self.ctx, self.runtime, self.branches, self.roles = ctx, runtime, branches, roles
        self.history = history
        self._running: dict[str, tuple[str, psycopg.Connection]] = {}  # id -> project, conn
        self._lock = threading.Lock()

    # -- sessions as a role --------------------------------------------------------------

    def _login(self, project_id: str, branch_id: str, database: str,
               role: str | None) -> tuple[Any, str, str]:
        """The branch row, the role and its password; 404/400 for what does not exist."""
        if role in SYSTEM_ROLES:
            raise InvalidInput(f"role {role!r} belongs to the platform; pick one of the "
                               "branch's roles")
        with self.ctx.tx() as conn:
            row = lookup.branch_row(conn, project_id, branch_id)
            owner = conn.execute(select(t.databases.c.owner_name).where(
                t.databases.c.branch_id == row.id, t.databases.c.name == database)).scalar()
            if owner is None:
                raise NotFound(f"database {database!r} not found on branch {row.name}")
            role = role or str(owner)
            kept = conn.execute(select(t.roles.c.password_encrypted).where(
                t.roles.c.branch_id == row.id, t.roles.c.name == role)).first()
        if kept is None:
            raise NotFound(f"role {role!r} not found on branch {row.name}")
        if not kept.password_encrypted:
            raise InvalidInput(f"role {role!r} has no password Argon keeps (made with SQL or "
                               "without login); reset its password to use it here")
        return row, role, self.roles.reveal_password(project_id, row.id, role)

    def _endpoint_of(self, branch_id: str, name: str) -> str:
        with self.ctx.tx() as conn:
            ep = conn.execute(select(t.endpoints.c.id).where(
                t.endpoints.c.branch_id == branch_id,
                t.endpoints.c.type == "read_write")).scalar()
        if ep is None:
            raise Conflict(f"branch {name} has no read-write compute; add one to run SQL")
        return str(ep)

    @contextmanager
    def _address(self, row: Any, timestamp: datetime | None) -> Iterator[tuple[str, int]]:
        """Socket directory and port of a compute showing the branch now or at a time."""
        if timestamp is not None:
            eph = self.branches.ephemeral_compute_at(row.id, timestamp=timestamp)
            try:
                yield eph.address.host, eph.address.port
            finally:
                self.branches.release_ephemeral(eph.id)
            return
        ep = self._endpoint_of(row.id, row.name)
        running = self.runtime.ensure_running(ep)
        self.runtime.session_started(ep)   # the reconciler must not suspend under us
        try:
            yield running.host, running.port
        finally:
            self.runtime.session_ended(ep)

    @contextmanager
    def session(self, project_id: str, branch_id: str, database: str, role: str | None,
                *, timestamp: datetime | None = None, timeout_ms: int = DEFAULT_TIMEOUT_MS
                ) -> Iterator[tuple[psycopg.Connection, str]]:
        """An autocommit connection logged in as the role; yields it and the role's name."""
        _bounded(timeout_ms, 1, MAX_TIMEOUT_MS, "timeout_ms")
        row, role, password = self._login(project_id, branch_id, database, role)
        with self._address(row, timestamp) as (socket_dir, port):
            try:
                conn = psycopg.connect(
                    host=socket_dir, port=port, dbname=database, user=role, password=password,
                    passfile=NO_PASSFILE, application_name=APPLICATION_NAME, autocommit=True,
                    connect_timeout=10, options=f"-c statement_timeout={timeout_ms}")
            except psycopg.OperationalError as exc:
                raise _login_error(exc, role, database) from None
            try:
                yield conn, role
            finally:
                conn.close()

    # -- running -------------------------------------------------------------------------

    def run(self, req: SqlRequest) -> SqlOutcome:
        query = req.query
        if not query.strip():
            raise InvalidInput("the query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidInput(f"the query is longer than {MAX_QUERY_CHARS} characters")
        if req.explain not in (None, "plan", "analyze"):
            raise InvalidInput("explain must be 'plan' or 'analyze'")
        limits = Limits(_bounded(req.max_rows, 1, MAX_ROWS_LIMIT, "max_rows"),
                        _bounded(req.max_bytes, 1024, MAX_BYTES_LIMIT, "max_bytes"))
        query_id = req.query_id or uuid.uuid4().hex
        if len(query_id) > 64:
            raise InvalidInput("query_id is longer than 64 characters")
        prefix = ""
        if req.explain:
            prefix = ("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " if req.explain == "analyze"
                      else "EXPLAIN (FORMAT JSON) ")
        text = prefix + query
        started, t0 = self.ctx.clock(), time.monotonic()
        with self.session(req.project_id, req.branch_id, req.database, req.role,
                          timestamp=req.timestamp, timeout_ms=req.timeout_ms) as (conn, role):
            with self._lock:
                if query_id in self._running:
                    raise Conflict(f"a query with id {query_id!r} is already running")
                self._running[query_id] = (req.project_id, conn)
            try:
                if req.read_only:
                    conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                out = self.execute(conn, text, limits)
                name_types(conn, out.results)
            finally:
                with self._lock:
                    self._running.pop(query_id, None)
        error = sql_error(out.error, len(prefix)) if out.error is not None else None
        outcome = SqlOutcome(
            query_id=query_id, database=req.database, role=role, results=out.results,
            error=error, duration_ms=round((time.monotonic() - t0) * 1000, 2),
            executed_sql=text, at_time=req.timestamp)
        _describe_truncation(outcome, limits)
        if req.explain and error is None and outcome.results and outcome.results[0].rows:
            plan = outcome.results[0].rows[0][0]
            outcome.explain = json.loads(plan) if isinstance(plan, str) else plan
        self.history.record(req, outcome, started)
        return outcome

    def execute(self, conn: psycopg.Connection, text: str, limits: Limits) -> _Collector:
        """Send ``text`` (one or more statements, simple protocol) and gather what returns."""
        enc = conn.info.encoding
        pgconn = conn.pgconn
        out = _Collector(limits, enc)
        with conn.lock:
            pgconn.send_query(text.encode(enc))
            pgconn.set_chunked_rows_mode(_CHUNK_ROWS)
            conn.wait(generators.send(pgconn))
            while (res := conn.wait(generators.fetch(pgconn))) is not None:
                status = res.status
                if status in _ROWS:
                    out.rows(res)
                elif status in _ENDS:
                    out.done(res)
                elif status == _ExecStatus.EMPTY_QUERY:
                    continue
                elif status in _COPIES:
                    conn.close()   # no COPY data can come from a browser: end the session
                    raise InvalidInput("COPY is not supported in the SQL editor; use psql "
                                       "with the connection string")
                elif out.error is None:
                    out.error = pg_errors.error_from_result(res, encoding=enc)
        return out

    def cancel(self, project_id: str, query_id: str) -> bool:
        """Ask Postgres to cancel the running query ``query_id``; False if none runs."""
        with self._lock:
            entry = self._running.get(query_id)
        if entry is None or entry[0] != project_id:
            return False
        try:
            entry[1].cancel_safe(timeout=10)
        except psycopg.Error as exc:
            logger.info("cancel of query %s failed: %s", query_id, exc)
            return False
        return True

    def running(self, project_id: str) -> list[str]:
        with self._lock:
            return [qid for qid, (pid, _c) in self._running.items() if pid == project_id]


def name_types(conn: psycopg.Connection, results: list[StatementResult]) -> None:
    """Names for types psycopg does not know (enums, domains, user types), asked of the
    server unless the session's transaction is aborted (then they stay their oid)."""
    unknown = sorted({c.type_oid for r in results for c in r.columns if not c.type})
    if not unknown:
        return
    names: dict[int, str] = {}
    if conn.info.transaction_status in (pq.TransactionStatus.IDLE, pq.TransactionStatus.INTRANS):
        try:
            rows = conn.execute("SELECT oid::int8, format_type(oid, NULL) FROM pg_type "
                                "WHERE oid = ANY(%s::oid[])", (unknown,)).fetchall()
            names = {int(o): str(n) for o, n in rows}
        except psycopg.Error as exc:
            logger.info("type names not available: %s", exc)
    for r in results:
        for c in r.columns:
            if not c.type:
                c.type = names.get(c.type_oid, f"oid {c.type_oid}")


def sql_error(exc: psycopg.Error, prefix: int) -> SqlError:
    d = exc.diag
    position = d.statement_position
    pos = int(position) - prefix if position is not None else None
    return SqlError(sqlstate=d.sqlstate or "", message=d.message_primary or str(exc),
                    position=pos if pos is None or pos > 0 else None,
                    detail=d.message_detail, hint=d.message_hint, severity=d.severity)


def _describe_truncation(out: SqlOutcome, limits: Limits) -> None:
    if not (limits.cut_rows or limits.cut_bytes):
        return
    out.truncated = True
    shown = sum(len(r.rows) for r in out.results)
    total = sum(r.row_count or len(r.rows) for r in out.results if r.columns)
    why = (f"the limit of {limits.max_rows} rows" if limits.cut_rows
           else f"the limit of {limits.max_bytes} bytes")
    out.truncated_message = (f"showing {shown} of {total} rows: the result was cut at {why}; "
                             "add a LIMIT or a WHERE clause to see the others")


def _login_error(exc: psycopg.OperationalError, role: str, database: str) -> ArgonError:
    text = str(exc)
    if "does not exist" in text and "database" in text:
        return NotFound(f"database {database!r} does not exist on the compute")
    if "password authentication failed" in text:
        return Conflict(f"role {role!r} refused the password Argon keeps for it (changed "
                        "with SQL?); reset its password")
    if "not permitted to log in" in text:
        return InvalidInput(f"role {role!r} cannot log in")
    logger.warning("SQL session for %s on %s failed: %s", role, database, text)
    return ArgonError(f"could not open a session as {role!r} on {database!r}")
