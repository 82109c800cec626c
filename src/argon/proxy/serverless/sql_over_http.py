"""Neon's SQL over HTTP: ``POST /sql`` (and its CORS preflight), as the serverless driver
and Neon's MCP server speak it.

A request names its database in the ``Neon-Connection-String`` header and carries one
statement ``{"query", "params", "arrayMode"?}`` or a batch ``{"queries": [...]}`` that runs
in one transaction. The answer is Neon's JSON: ``fields``, ``rows``, ``command``,
``rowCount``, ``rowAsArray`` (a batch: ``{"results": [...]}``), or Neon's error object.
The reference is ``proxy/src/serverless/sql_over_http.rs`` in neondatabase/neon.

Authentication and routing sit behind ``SqlResolver``; connections come from ``SqlPool``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import os
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from argon.errors import ArgonError, InvalidInput, Unauthorized
from argon.pg.scram import ScramVerifier
from argon.proxy.ip_check import ip_not_allowed_text
from argon.proxy.workers import shared_workers
from argon.proxy.serverless.sql_pool import (
    PooledConnection,
    PoolSettings,
    SqlPool,
    SqlTarget,
    UnsupportedStatement,
    begin_statement,
    run_batch,
)
from argon.proxy.serverless.sql_values import (
    Budget,
    ParamError,
    ResponseTooLarge,
    Statement,
    ValueError_,
    check_pg_text,
    json_to_pg_params,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ConnectionInfo", "ScramSqlResolver", "SqlOverHttpConfig", "SqlOverHttpHandler",
    "SqlResolver", "SqlTarget", "handle_sql_request", "parse_connection_string",
]

MIB = 1024 * 1024
MAX_INT_DIGITS = 4300   # Python's own bound on int() (sys.get_int_max_str_digits)
CONN_STRING = "neon-connection-string"
RAW_TEXT_OUTPUT = "neon-raw-text-output"
ARRAY_MODE = "neon-array-mode"
ALLOW_POOL = "neon-pool-opt-in"
TXN_ISOLATION_LEVEL = "neon-batch-isolation-level"
TXN_READ_ONLY = "neon-batch-read-only"
TXN_DEFERRABLE = "neon-batch-deferrable"
REQUEST_ID = "Neon-Request-Id"
ISOLATION_LEVELS = {"Serializable": "SERIALIZABLE", "ReadUncommitted": "READ UNCOMMITTED",
                    "ReadCommitted": "READ COMMITTED", "RepeatableRead": "REPEATABLE READ"}
# Neon's list, plus the deferrable header it forgot and Content-Type for JSON bodies.
CORS_ALLOW_HEADERS = ("Authorization, Neon-Connection-String, Neon-Raw-Text-Output, "
                      "Neon-Array-Mode, Neon-Pool-Opt-In, Neon-Batch-Read-Only, "
                      "Neon-Batch-Isolation-Level, Neon-Batch-Deferrable, Content-Type")
ERROR_FIELDS = ("message", "code", "detail", "hint", "position", "internalPosition",
                "internalQuery", "severity", "where", "table", "column", "schema", "dataType",
                "constraint", "file", "line", "routine")


class SqlResolver(Protocol):
    async def resolve(self, conn_string: str, client_address: str | None = None) -> SqlTarget:
        """Authenticate the connection string and wake its compute (argon.errors on
        failure: Unauthorized for a bad password or a client address the endpoint's IP
        allow list refuses, NotFound, InvalidInput)."""
        ...


class ConnectionInfo(NamedTuple):
    host: str | None
    port: int | None
    user: str
    password: str
    dbname: str
    options: str | None  # the decoded ``options`` URL parameter (e.g. "endpoint=ep-x")


def parse_connection_string(s: str) -> ConnectionInfo:
    """Split a Neon-Connection-String URL as Neon's proxy reads it (InvalidInput if not)."""
    example = "e.g. postgresql://role:password@ep-xxx.host/dbname"
    try:
        url = urlsplit(s.strip())
        port = url.port
    except ValueError as ex:
        raise InvalidInput(f"invalid connection string: {ex} ({example})") from None
    if url.scheme not in ("postgres", "postgresql"):
        raise InvalidInput(f"incorrect scheme: the connection string must start with "
                           f"postgresql:// ({example})")
    user = unquote(url.username or "")
    if not user:
        raise InvalidInput(f"missing username in the connection string ({example})")
    if url.password is None:
        raise InvalidInput("missing authentication credentials: required password "
                           f"({example})")
    dbname = unquote(url.path.lstrip("/").split("/", 1)[0])
    if not dbname:
        raise InvalidInput(f"missing database name in the connection string ({example})")
    options = None
    for key, value in parse_qsl(url.query, keep_blank_values=True):
        if key == "options":
            options = value
    return ConnectionInfo(url.hostname or None, port, user, unquote(url.password), dbname,
                          options)


EndpointFor = Callable[[str | None, int | None, str | None], Awaitable[str]]
RoleSecret = Callable[[str, str], Awaitable["str | ScramVerifier | None"]]
Wake = Callable[[str], Awaitable[tuple[str, int]]]
IpAllowed = Callable[[str, str], Awaitable[bool]]


class ScramSqlResolver:
    """A SqlResolver that checks passwords against the role's SCRAM verifier.

    The lead plugs in three control-plane calls: ``endpoint_for(host, port, options)`` ->
    endpoint id (NotFound/InvalidInput when there is none), ``role_secret(endpoint_id,
    role)`` -> the verifier text (None for an unknown role) and ``wake(endpoint_id)`` ->
    (host, port): a socket directory or a TCP host. A verified password is remembered (as a keyed hash, in memory) so
    that the 4096 PBKDF2 rounds are paid once per password, not per request.
    """

    def __init__(self, endpoint_for: EndpointFor, role_secret: RoleSecret, wake: Wake, *,
                 cache_size: int = 1024, ip_allowed: IpAllowed | None = None) -> None:
        self.endpoint_for, self.role_secret, self.wake = endpoint_for, role_secret, wake
        self.ip_allowed = ip_allowed   # (endpoint_id, client address) -> allowed?
        self._cache_size = cache_size
        self._verified: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._key = os.urandom(32)

    async def resolve(self, conn_string: str, client_address: str | None = None) -> SqlTarget:
        info = parse_connection_string(conn_string)
        endpoint_id = await self.endpoint_for(info.host, info.port, info.options)
        # routed, not yet authenticated: where Neon checks the project's allowed_ips
        if self.ip_allowed is not None and not await self.ip_allowed(
                endpoint_id, client_address or ""):
            raise Unauthorized(ip_not_allowed_text(client_address or "unknown"))
        await self.authenticate(endpoint_id, info.user, info.password)
        host, port = await self.wake(endpoint_id)
        return SqlTarget(host, port, info.user, info.dbname, endpoint_id,
                         password=info.password)

    async def authenticate(self, endpoint_id: str, role: str, password: str) -> None:
        # Same answer for an unknown role and a wrong password, as Neon gives.
        failed = Unauthorized(f"password authentication failed for user '{role}'")
        secret = await self.role_secret(endpoint_id, role)
        if secret is None:
            raise failed
        try:
            verifier = secret if isinstance(secret, ScramVerifier) else ScramVerifier.parse(secret)
        except InvalidInput:
            logger.warning("role %s on %s has no SCRAM verifier", role, endpoint_id)
            raise failed from None
        key = (endpoint_id, role, str(verifier))
        tag = hmac.new(self._key, password.encode(), hashlib.sha256).digest()
        known = self._verified.get(key)
        if known is not None and hmac.compare_digest(known, tag):
            self._verified.move_to_end(key)
            return
        if not await shared_workers().run_quick(verifier.verify_password, password):
            raise failed
        self._verified[key] = tag
        while len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)


@dataclass(frozen=True)
class SqlOverHttpConfig:
    max_request_bytes: int = 10 * MIB  # Neon's sql_over_http_max_request_size_bytes
    max_response_bytes: int = 10 * MIB  # Neon's sql_over_http_max_response_size_bytes
    pool_opt_in: bool = True  # as Neon: pool only with "Neon-Pool-Opt-In: true"
    query_timeout: float | None = 300.0  # cancel a request's statements after this long
    pool: PoolSettings = field(default_factory=PoolSettings)


class CancelledQuery(Exception):
    """The client went away or the request ran out of time; the statement was cancelled."""


class HttpError(Exception):
    """An answer in Neon's error shape, with the database's fields when there are any."""

    def __init__(self, status: int, message: str, db: psycopg.Error | None = None,
                 code: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.db, self.code = status, message, db, code


@dataclass(frozen=True)
class Options:
    raw_output: bool
    array_mode: bool
    pooled: bool
    isolation: str | None
    read_only: bool
    deferrable: bool


class SqlOverHttpHandler:
    """Answers /sql requests; owns (or shares) the connection pool."""

    def __init__(self, resolver: SqlResolver, *, pool: SqlPool | None = None,
                 config: SqlOverHttpConfig | None = None) -> None:
        self.resolver = resolver
        self.config = config or SqlOverHttpConfig()
        self.pool = pool or SqlPool(self.config.pool)

    async def __call__(self, request: Request) -> Response:
        return await self.handle(request)

    async def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        if request.method == "OPTIONS":
            response = Response(status_code=200, headers={
                "Allow": "OPTIONS, POST", "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
                "Access-Control-Max-Age": "86400"})
        elif request.method != "POST":
            response = _error_response(HttpError(405, "use POST to send SQL to /sql"))
            response.headers["Allow"] = "OPTIONS, POST"
        else:
            try:
                response = await self._post(request)
            except HttpError as ex:
                response = _error_response(ex)
            except CancelledQuery:
                response = _json_response(400, {
                    "message": "Query cancelled, connection was terminated", "code": "08P01"})
            except Exception:  # a bug or a failing control plane: say so, keep the details
                logger.exception("/sql request %s failed", request_id)
                response = _error_response(HttpError(
                    500, f"internal error while handling the request (request id {request_id})"))
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers[REQUEST_ID] = request_id
        return response

    async def aclose(self) -> None:
        await self.pool.close()

    async def close_endpoint(self, endpoint_id: str) -> int:
        return await self.pool.close_endpoint(endpoint_id)

    async def _post(self, request: Request) -> Response:
        opts = self._options(request)
        conn_string = request.headers.get(CONN_STRING)
        if not conn_string:
            raise HttpError(400, "invalid header: Neon-Connection-String is missing; send "
                            "the database URL, e.g. postgresql://role:password@ep-xxx.host/db")
        payload = _parse_payload(await self._read_body(request))
        try:
            target = await self.resolver.resolve(
                conn_string, request.client.host if request.client else None)
        except ArgonError as ex:
            raise HttpError(400 if ex.status < 500 else ex.status, ex.message) from None
        pc = await self._connect(target, opts.pooled)
        budget = Budget(self.config.max_response_bytes)
        chunk = self.config.pool.rows_per_chunk
        try:
            if isinstance(payload, Statement):
                work = pc.statement_json(payload, raw_output=opts.raw_output,
                                         array_mode=opts.array_mode, budget=budget,
                                         rows_per_chunk=chunk)
            else:
                begin = begin_statement(opts.isolation, opts.read_only, opts.deferrable)
                work = run_batch(pc, payload, begin, raw_output=opts.raw_output,
                                 array_mode=opts.array_mode, budget=budget,
                                 rows_per_chunk=chunk)
            body = await self._guarded(request, work)
        except psycopg.Error as ex:
            raise HttpError(400, ex.diag.message_primary or str(ex), db=ex) from None
        except ResponseTooLarge:
            raise HttpError(507, "response is too large (max is "
                            f"{self.config.max_response_bytes} bytes)") from None
        except UnsupportedStatement as ex:
            raise HttpError(400, str(ex)) from None
        except ValueError_:
            raise HttpError(500, "could not parse postgres response") from None
        finally:
            self.pool.release(pc)
        response = Response(body.encode(), media_type="application/json")
        if not isinstance(payload, Statement):
            # Neon echoes the batch's transaction settings.
            if opts.read_only:
                response.headers[TXN_READ_ONLY] = "true"
            if opts.deferrable:
                response.headers[TXN_DEFERRABLE] = "true"
            if opts.isolation:
                response.headers[TXN_ISOLATION_LEVEL] = request.headers[TXN_ISOLATION_LEVEL]
        return response

    def _options(self, request: Request) -> Options:
        h = request.headers
        level = h.get(TXN_ISOLATION_LEVEL)
        if level is not None and level not in ISOLATION_LEVELS:
            raise HttpError(400, "invalid isolation level: use one of "
                            + ", ".join(ISOLATION_LEVELS))
        return Options(
            raw_output=h.get(RAW_TEXT_OUTPUT) == "true", array_mode=h.get(ARRAY_MODE) == "true",
            pooled=not self.config.pool_opt_in or h.get(ALLOW_POOL) == "true",
            isolation=ISOLATION_LEVELS[level] if level else None,
            read_only=h.get(TXN_READ_ONLY) == "true", deferrable=h.get(TXN_DEFERRABLE) == "true")

    async def _read_body(self, request: Request) -> bytes:
        limit = self.config.max_request_bytes
        too_large = HttpError(413, f"request is too large (max is {limit} bytes)")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
        except ClientDisconnect:
            raise HttpError(
                400, "could not read the HTTP request body: client disconnected") from None
        return b"".join(chunks)

    async def _connect(self, target: SqlTarget, pooled: bool) -> PooledConnection:
        try:
            return await self.pool.acquire(target, pooled=pooled)
        except ArgonError as ex:
            raise HttpError(400 if ex.status < 500 else ex.status, ex.message) from None
        except psycopg.OperationalError as ex:
            # The server's own refusal (e.g. an unknown database) is the user's to see;
            # anything else is a compute that is not reachable.
            text = str(ex)
            if "FATAL:" in text:
                raise HttpError(400, text.rsplit("FATAL:", 1)[1].strip()) from None
            logger.warning("cannot connect to endpoint %s: %s", target.endpoint_id, text)
            raise HttpError(500, "could not connect to compute: the endpoint's Postgres "
                            "is not reachable; retry shortly") from None

    async def _guarded(self, request: Request, work: Any) -> str:
        """Run ``work``, cancelling it when the client disconnects or time runs out."""
        task: asyncio.Task[str] = asyncio.ensure_future(work)
        watcher = asyncio.ensure_future(_wait_disconnect(request))
        try:
            done, _ = await asyncio.wait({task, watcher}, timeout=self.config.query_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        finally:
            watcher.cancel()
        if task in done:
            return task.result()
        task.cancel()  # psycopg cancels the statement on the server
        try:
            await task
        except BaseException as ex:  # noqa: BLE001 - any outcome means "cancelled"
            logger.info("cancelled a /sql request: %s", type(ex).__name__)
        raise CancelledQuery()


async def _wait_disconnect(request: Request) -> None:
    # After the body is read, the next ASGI message is the client going away.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):   # 1e999: JSON numbers are finite, Postgres' too
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"number out of range: an integer of {len(text)} digits")
    return int(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_payload(body: bytes) -> Statement | list[Statement]:
    """The request body as statements; every malformed body is a 400 naming the fault."""
    try:
        data = json.loads(body, parse_float=_finite_float, parse_int=_bounded_int,
                          parse_constant=_no_constant)
    except RecursionError:
        raise HttpError(400, "could not parse the HTTP request body: JSON nested too "
                        "deeply") from None
    except (ValueError, UnicodeDecodeError) as ex:
        raise HttpError(400, f"could not parse the HTTP request body: {ex}") from None
    if isinstance(data, dict) and "query" in data:
        return _statement(data)
    if isinstance(data, dict) and isinstance(data.get("queries"), list):
        return [_statement(q) for q in data["queries"]]
    raise HttpError(400, 'could not parse the HTTP request body: expected {"query": "...", '
                    '"params": [...]} or {"queries": [{"query": "...", "params": [...]}, ...]}')


def _statement(item: Any) -> Statement:
    if not isinstance(item, dict) or not isinstance(item.get("query"), str):
        raise HttpError(400, 'could not parse the HTTP request body: "query" must be a string')
    params = item.get("params")
    if params is None:
        params = []
    if not isinstance(params, list):
        raise HttpError(400, 'could not parse the HTTP request body: "params" must be an array')
    array_mode = item.get("arrayMode")
    if array_mode is not None and not isinstance(array_mode, bool):
        raise HttpError(400, 'could not parse the HTTP request body: "arrayMode" must be a '
                        "boolean")
    try:
        check_pg_text(item["query"], "the query")
        return Statement(item["query"], json_to_pg_params(params), array_mode)
    except ParamError as ex:
        raise HttpError(400, f"could not parse the HTTP request body: {ex}") from None


def error_body(message: str, db: psycopg.Error | None, code: str = "") -> dict[str, Any]:
    """Neon's error object: the database's fields when there are any, else nulls."""
    body: dict[str, Any] = dict.fromkeys(ERROR_FIELDS)
    body.update(message=message, code=code, severity="")
    if db is None:
        return body
    d = db.diag
    position, internal_position, internal_query = d.statement_position, None, None
    if position is None and d.internal_position is not None:
        internal_position, internal_query = d.internal_position, d.internal_query
    body.update(
        message=d.message_primary or message, code=d.sqlstate or "", detail=d.message_detail,
        hint=d.message_hint, position=position, internalPosition=internal_position,
        internalQuery=internal_query, severity=d.severity or "", where=d.context,
        table=d.table_name, column=d.column_name, schema=d.schema_name,
        dataType=d.datatype_name, constraint=d.constraint_name, file=d.source_file,
        line=d.source_line, routine=d.source_function)
    return body


def _error_response(ex: HttpError) -> Response:
    return _json_response(ex.status, error_body(ex.message, ex.db, ex.code))


def _json_response(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body, ensure_ascii=False).encode(), status_code=status,
                    media_type="application/json")


async def handle_sql_request(request: Request, resolver: SqlResolver, *,
                             handler: SqlOverHttpHandler | None = None) -> Response:
    """Answer one /sql request (POST or OPTIONS).

    Pass a long-lived ``handler`` to choose the pool and limits; without one, a handler
    (and its pool) is kept on ``request.app.state.argon_sql`` for this resolver, and the
    app's shutdown should call ``await app.state.argon_sql.aclose()``.
    """
    if handler is None:
        state = request.app.state
        handler = getattr(state, "argon_sql", None)
        if handler is None or handler.resolver is not resolver:
            handler = SqlOverHttpHandler(resolver)
            state.argon_sql = handler
    return await handler.handle(request)
