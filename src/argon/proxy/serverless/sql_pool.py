"""Server-side connections for SQL over HTTP: a bounded pool per (endpoint, role, database).

A connection goes back to the pool only in a known-clean state: after every request it
is rolled back if a transaction is open and then ``DISCARD ALL`` resets settings,
prepared statements, temp tables, advisory locks and LISTENs; if anything looks wrong
(a broken socket, a query still running, a cancelled request) it is closed instead.
The cleanup runs after the response is sent, off the request's critical path.

Queries run over the extended protocol with text parameters and text results, as Neon's
``query_raw_txt`` does, and rows are fetched in chunks so that a caller can stop reading
a result that grows too large.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import psycopg
from psycopg import errors as pg_errors
from psycopg import generators, pq

from argon.errors import Unavailable
from argon.proxy.serverless.sql_values import (
    BUILTIN_KINDS,
    TYPE_LOOKUP_SQL,
    Budget,
    Statement,
    StatementJson,
    TypeKind,
    kind_from_pg_type,
)

logger = logging.getLogger(__name__)

ExecStatus = pq.ExecStatus
TxStatus = pq.TransactionStatus
_ROW_STATUSES = (ExecStatus.TUPLES_CHUNK, ExecStatus.SINGLE_TUPLE)
_END_STATUSES = (ExecStatus.TUPLES_OK, ExecStatus.COMMAND_OK, ExecStatus.EMPTY_QUERY)
_COPY_STATUSES = (ExecStatus.COPY_IN, ExecStatus.COPY_OUT, ExecStatus.COPY_BOTH)


@dataclass(frozen=True)
class SqlTarget:
    """Where a /sql request runs, once authenticated.

    Computes trust nobody, so the connection logs in as ``role`` with the request's own
    ``password`` (already checked against the verifier).  The password is part of the
    target's equality: an idle pooled connection is reused only by a request that gave
    the same password.
    """

    host: str          # the compute's socket directory, or its TCP host
    port: int
    role: str
    database: str
    endpoint_id: str
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class PoolSettings:
    max_conns_per_key: int = 20  # open connections per (endpoint, role, database)
    idle_timeout: float = 300.0  # seconds an idle connection is kept (Neon: 5 min)
    acquire_timeout: float = 15.0  # wait for a free slot before answering "busy"
    connect_timeout: float = 10.0
    rows_per_chunk: int = 100  # rows per fetch, so a huge result can be stopped early


class ResultSink(Protocol):
    """Receives one statement's results; ``rows`` may raise to stop reading."""

    def rows(self, result: pq.abc.PGresult) -> None: ...

    def done(self, result: pq.abc.PGresult) -> None: ...


class UnsupportedStatement(Exception):
    """COPY and other statements that cannot run over HTTP."""


@dataclass(eq=False)
class PooledConnection:
    conn: psycopg.AsyncConnection[tuple[object, ...]]
    target: SqlTarget
    pooled: bool
    generation: int
    last_used: float = field(default_factory=time.monotonic)
    broken: bool = False  # set on any doubt: the connection is closed, never reused
    type_cache: dict[int, TypeKind] = field(default_factory=dict)

    @property
    def encoding(self) -> str:
        return self.conn.info.encoding

    async def run(self, query: str, params: Sequence[str | None], sink: ResultSink,
                  rows_per_chunk: int) -> None:
        """Run one statement (extended protocol, text in and out), feeding ``sink``.

        Raises the server's error as a psycopg error. Anything else that escapes
        (including the sink stopping early and cancellation) marks the connection broken.
        """
        enc = self.encoding
        pgconn = self.conn.pgconn
        error: psycopg.Error | None = None
        try:
            async with self.conn.lock:
                pgconn.send_query_params(
                    query.encode(enc),
                    [None if p is None else p.encode(enc) for p in params] or None,
                    result_format=pq.Format.TEXT)
                pgconn.set_chunked_rows_mode(rows_per_chunk)
                await self.conn.wait(generators.send(pgconn))
                while (res := await self.conn.wait(generators.fetch(pgconn))) is not None:
                    status = res.status
                    if status in _ROW_STATUSES:
                        if error is None:
                            sink.rows(res)
                    elif status in _END_STATUSES:
                        if error is None:
                            sink.done(res)
                    elif status in _COPY_STATUSES:
                        self.broken = True
                        raise UnsupportedStatement(
                            "COPY is not supported over HTTP; use a Postgres connection")
                    else:
                        error = pg_errors.error_from_result(res, encoding=enc)
        except BaseException:
            self.broken = True
            raise
        if error is not None:
            raise error

    async def command(self, sql: str) -> None:
        """Run a fixed statement of ours (BEGIN, COMMIT, ROLLBACK, DISCARD ALL)."""
        try:
            await self.conn.execute(sql.encode())
        except psycopg.DatabaseError:
            raise
        except BaseException:
            self.broken = True
            raise

    @property
    def transaction_status(self) -> TxStatus:
        return self.conn.info.transaction_status

    def kind_of(self, oid: int) -> TypeKind | None:
        return BUILTIN_KINDS.get(oid) or self.type_cache.get(oid)

    async def lookup_types(self, oids: list[int], rows_per_chunk: int) -> dict[int, TypeKind]:
        """Learn how to convert types the static table lacks (cached per connection)."""
        collect = _Collect(self.encoding)
        await self.run(TYPE_LOOKUP_SQL, ["{" + ",".join(map(str, oids)) + "}"], collect,
                       rows_per_chunk)
        for oid, elem, typtype, base in collect.values:
            self.type_cache[int(oid or 0)] = kind_from_pg_type(int(elem or 0), typtype or "",
                                                               int(base or 0))
        return {o: self.type_cache.get(o) or kind_from_pg_type(0, "", 0) for o in oids}

    async def statement_json(self, stmt: Statement, *, raw_output: bool, array_mode: bool,
                             budget: Budget, rows_per_chunk: int) -> str:
        """Run one statement and answer with Neon's JSON for it."""
        out = StatementJson(
            raw_output=raw_output,
            array_mode=array_mode if stmt.array_mode is None else stmt.array_mode,
            budget=budget, kind_of=self.kind_of, encoding=self.encoding)
        await self.run(stmt.query, stmt.params, out, rows_per_chunk)
        if out.unknown_oids:
            out.resolve(await self.lookup_types(out.unknown_oids, rows_per_chunk))
        return out.json()


class _Collect:
    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.values: list[list[str | None]] = []

    def rows(self, result: pq.abc.PGresult) -> None:
        for r in range(result.ntuples):
            self.values.append([None if (v := result.get_value(r, c)) is None
                                else v.decode(self.encoding) for c in range(result.nfields)])

    def done(self, result: pq.abc.PGresult) -> None:
        pass


def begin_statement(isolation: str | None, read_only: bool, deferrable: bool) -> str:
    """START TRANSACTION with a batch's options, as tokio-postgres spells it."""
    modes = [f"ISOLATION LEVEL {isolation}"] if isolation else []
    modes += ["READ ONLY"] if read_only else []
    modes += ["DEFERRABLE"] if deferrable else []
    return "START TRANSACTION" + (" " + ", ".join(modes) if modes else "")


async def run_batch(pc: PooledConnection, stmts: Sequence[Statement], begin: str, *,
                    raw_output: bool, array_mode: bool, budget: Budget,
                    rows_per_chunk: int) -> str:
    """Run statements in one transaction: all committed, or (on any error) none."""
    await pc.command(begin)
    results: list[str] = []
    try:
        for stmt in stmts:
            results.append(await pc.statement_json(
                stmt, raw_output=raw_output, array_mode=array_mode, budget=budget,
                rows_per_chunk=rows_per_chunk))
    except psycopg.Error:
        if not pc.broken:
            try:
                await pc.command("ROLLBACK")
            except psycopg.Error:
                pc.broken = True
        raise
    try:
        await pc.command("COMMIT")
    except psycopg.Error:
        pc.broken = True  # as Neon: a connection whose COMMIT failed is not reused
        raise
    return '{"results":[' + ",".join(results) + "]}"


@dataclass
class _Bucket:
    idle: list[PooledConnection] = field(default_factory=list)
    open: int = 0  # idle + lent + connecting + being cleaned
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


PoolKey = tuple[str, str, str]


class SqlPool:
    """Connections to computes, pooled per (endpoint, role, database)."""

    def __init__(self, settings: PoolSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or PoolSettings()
        self._clock = clock
        self._buckets: dict[PoolKey, _Bucket] = {}
        self._generations: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    @staticmethod
    def key(target: SqlTarget) -> PoolKey:
        return (target.endpoint_id, target.role, target.database)

    def stats(self) -> dict[PoolKey, tuple[int, int]]:
        """(open, idle) connections per key, for status pages and tests."""
        return {k: (b.open, len(b.idle)) for k, b in self._buckets.items() if b.open}

    async def acquire(self, target: SqlTarget, *, pooled: bool = True) -> PooledConnection:
        if self._closed:
            raise Unavailable("the SQL-over-HTTP pool is shut down")
        self._start_reaper()
        bucket = self._buckets.setdefault(self.key(target), _Bucket())
        generation = self._generations.get(target.endpoint_id, 0)
        deadline = self._clock() + self.settings.acquire_timeout
        while True:
            while pooled and bucket.idle:
                pc = bucket.idle.pop()
                if pc.target == target and pc.generation == generation and not pc.conn.closed:
                    pc.pooled = True
                    return pc
                await self._drop(pc)
            if bucket.open < self.settings.max_conns_per_key:
                bucket.open += 1
                try:
                    conn = await self._connect(target)
                except BaseException:
                    bucket.open -= 1
                    bucket.notify()
                    raise
                return PooledConnection(conn, target, pooled, generation)
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise Unavailable(
                    f"too many concurrent SQL-over-HTTP requests for endpoint "
                    f"{target.endpoint_id} (limit {self.settings.max_conns_per_key}); "
                    f"retry shortly")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await bucket.changed.wait()

    async def _connect(self, target: SqlTarget) -> psycopg.AsyncConnection[tuple[object, ...]]:
        return await psycopg.AsyncConnection.connect(
            host=target.host, port=target.port, user=target.role,
            password=target.password,
            dbname=target.database, autocommit=True, prepare_threshold=None,
            connect_timeout=max(1, round(self.settings.connect_timeout)),
            # Argon's own tag: idle pooled connections must not keep a compute awake
            # (each /sql request counts as activity when it wakes the endpoint).
            client_encoding="UTF8", application_name="argon")

    def release(self, pc: PooledConnection) -> None:
        """Give a connection back; it is cleaned (or closed) in the background."""
        task = asyncio.get_running_loop().create_task(self._recycle(pc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recycle(self, pc: PooledConnection) -> None:
        keep = (pc.pooled and not pc.broken and not self._closed and not pc.conn.closed
                and pc.generation == self._generations.get(pc.target.endpoint_id, 0))
        if keep:
            try:
                status = pc.transaction_status
                if status in (TxStatus.INTRANS, TxStatus.INERROR):
                    await pc.command("ROLLBACK")
                    status = pc.transaction_status
                if status != TxStatus.IDLE:
                    keep = False
                else:
                    await pc.command("DISCARD ALL")
                    keep = pc.transaction_status == TxStatus.IDLE
            except Exception as ex:  # a connection we cannot clean is not reused
                logger.info("dropping SQL-over-HTTP connection to %s: %s",
                            pc.target.endpoint_id, ex)
                keep = False
            keep = keep and not self._closed and pc.generation == self._generations.get(
                pc.target.endpoint_id, 0)
        if not keep:
            await self._drop(pc)
            return
        pc.last_used = self._clock()
        bucket = self._buckets.setdefault(self.key(pc.target), _Bucket())
        bucket.idle.append(pc)
        bucket.notify()

    async def _drop(self, pc: PooledConnection) -> None:
        try:
            if pc.conn.pgconn.transaction_status == TxStatus.ACTIVE:
                # A statement is still running (stopped early or cancelled): stop it
                # on the server too, not just our end of the socket.
                with contextlib.suppress(Exception):
                    await pc.conn.cancel_safe(timeout=2.0)
            await pc.conn.close()
        except Exception as ex:
            logger.debug("closing a SQL-over-HTTP connection failed: %s", ex)
        finally:
            bucket = self._buckets.get(self.key(pc.target))
            if bucket is not None:
                bucket.open -= 1
                bucket.notify()

    async def close_endpoint(self, endpoint_id: str) -> int:
        """Close idle connections to an endpoint (its compute suspends); connections in
        use are closed when their request ends. Returns how many were closed now."""
        self._generations[endpoint_id] = self._generations.get(endpoint_id, 0) + 1
        closed = 0
        for key, bucket in list(self._buckets.items()):
            if key[0] != endpoint_id:
                continue
            idle, bucket.idle = bucket.idle, []
            for pc in idle:
                await self._drop(pc)
                closed += 1
        return closed

    async def close(self) -> None:
        """Close everything; requests still running lose their connection at the end."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for bucket in self._buckets.values():
            idle, bucket.idle = bucket.idle, []
            for pc in idle:
                await self._drop(pc)

    async def expire_idle(self) -> int:
        """Close connections idle for longer than ``idle_timeout``; returns the count."""
        cutoff = self._clock() - self.settings.idle_timeout
        expired = 0
        for bucket in self._buckets.values():
            stale = [pc for pc in bucket.idle if pc.last_used <= cutoff]
            if not stale:
                continue
            bucket.idle = [pc for pc in bucket.idle if pc.last_used > cutoff]
            for pc in stale:
                await self._drop(pc)
                expired += 1
        return expired

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        interval = max(0.05, min(self.settings.idle_timeout / 2, 30.0))
        while not self._closed:
            await asyncio.sleep(interval)
            try:
                await self.expire_idle()
            except Exception:  # the reaper must survive one bad connection
                logger.exception("expiring idle SQL-over-HTTP connections failed")
