"""The console's tables view: schemas, tables, columns, indexes, rows, and editing a cell.

Everything runs as SQL of the chosen role through ``SqlRunner.session`` (so a role sees
only what it may), identifiers quoted with psycopg.sql.  A cell is changed only by the
row's primary key; the UPDATE that ran is returned word for word so the console can
show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from argon.control.sql_runner import (
    DEFAULT_MAX_BYTES,
    Column,
    Limits,
    SqlError,
    SqlRunner,
    name_types,
    sql_error,
)
from argon.errors import Conflict, InvalidInput, NotFound

MAX_PAGE = 500

_TABLES = """
SELECT n.nspname, c.relname, c.relkind::text, greatest(c.reltuples, 0)::int8
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
  AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY 1, 2"""
_SCHEMAS = """
SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema')
  AND nspname NOT LIKE 'pg_toast%%' AND nspname NOT LIKE 'pg_temp%%' ORDER BY 1"""
_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.atttypid::int8
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"""
_INDEXES = """
SELECT i.relname, pg_get_indexdef(x.indexrelid), x.indisunique, x.indisprimary,
       ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = %s::regclass ORDER BY x.indisprimary DESC, i.relname"""


@dataclass(frozen=True)
class TableRef:
    project_id: str
    branch_id: str
    database: str
    role: str | None
    schema: str
    table: str

    def regclass(self) -> str:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema),
                                       sql.Identifier(self.table)).as_string(None)


@dataclass
class ColumnInfo:
    name: str
    type: str
    nullable: bool
    default: str | None
    primary_key: bool


@dataclass
class IndexInfo:
    name: str
    definition: str
    unique: bool
    primary: bool
    columns: list[str]


@dataclass
class TableInfo:
    schema: str
    name: str
    columns: list[ColumnInfo]
    indexes: list[IndexInfo]
    primary_key: list[str]


@dataclass
class RowsPage:
    columns: list[Column]
    rows: list[list[Any]]
    total: int
    offset: int
    limit: int
    sort: str | None
    order: str
    sql: str
    truncated: bool


@dataclass
class CellEdit:
    sql: str
    row: dict[str, Any]


class TableBrowser:
    def __init__(self, runner: SqlRunner) -> None:
        self.runner = runner

    def tables(self, project_id: str, branch_id: str, database: str,
               role: str | None) -> list[dict[str, Any]]:
        """Each schema with its tables, views and foreign tables."""
        with self.runner.session(project_id, branch_id, database, role) as (conn, _):
            schemas = [r[0] for r in conn.execute(_SCHEMAS).fetchall()]
            rows = conn.execute(_TABLES).fetchall()
        kinds = {"r": "table", "p": "table", "v": "view", "m": "materialized view",
                 "f": "foreign table"}
        out: dict[str, list[dict[str, Any]]] = {s: [] for s in schemas}
        for schema, name, kind, estimate in rows:
            out.setdefault(schema, []).append({"name": name, "kind": kinds.get(kind, kind),
                                               "estimated_rows": int(estimate)})
        return [{"name": s, "tables": tables} for s, tables in out.items()]

    def describe(self, ref: TableRef) -> TableInfo:
        with self.runner.session(ref.project_id, ref.branch_id, ref.database,
                                 ref.role) as (conn, _):
            return _describe(conn, ref)

    def rows(self, ref: TableRef, *, limit: int = 50, offset: int = 0,
             sort: str | None = None, order: str = "asc") -> RowsPage:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be from 1 to {MAX_PAGE}, not {limit}")
        if offset < 0:
            raise InvalidInput(f"offset must be 0 or more, not {offset}")
        if order not in ("asc", "desc"):
            raise InvalidInput("order must be 'asc' or 'desc'")
        with self.runner.session(ref.project_id, ref.branch_id, ref.database,
                                 ref.role) as (conn, _):
            info = _describe(conn, ref)
            names = [c.name for c in info.columns]
            if sort is not None and sort not in names:
                raise InvalidInput(f"table {ref.schema}.{ref.table} has no column {sort!r}")
            keys = ([sort] if sort else []) + [k for k in info.primary_key if k != sort]
            direction = sql.SQL("DESC" if order == "desc" else "ASC")
            order_by = (sql.SQL(" ORDER BY ") + sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(k), direction) for k in keys)
                if keys else sql.SQL(""))
            target = sql.SQL("{}.{}").format(sql.Identifier(ref.schema),
                                             sql.Identifier(ref.table))
            query = (sql.SQL("SELECT * FROM {}").format(target) + order_by
                     + sql.SQL(" LIMIT {} OFFSET {}").format(sql.Literal(limit),
                                                            sql.Literal(offset)))
            text = query.as_string(conn)
            got = self.runner.execute(conn, text, Limits(limit, DEFAULT_MAX_BYTES))
            if got.error is not None:
                raise _as_argon(sql_error(got.error, 0))
            name_types(conn, got.results)
            count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()
        result = got.results[0]
        return RowsPage(columns=result.columns, rows=result.rows,
                        total=int(count[0]) if count else 0, offset=offset, limit=limit,
                        sort=sort, order=order, sql=text, truncated=result.truncated)

    def update_cell(self, ref: TableRef, key: dict[str, Any], column: str,
                    value: Any) -> CellEdit:
        """``UPDATE ... SET column = value WHERE <primary key> = key RETURNING *``, only if
        it changes exactly one row (else rolled back); returns the SQL and the new row."""
        with self.runner.session(ref.project_id, ref.branch_id, ref.database,
                                 ref.role) as (conn, _):
            info = _describe(conn, ref)
            if not info.primary_key:
                raise Conflict(f"table {ref.schema}.{ref.table} has no primary key: rows are "
                               "edited by primary key only (add one with ALTER TABLE ... ADD "
                               "PRIMARY KEY, or run an UPDATE in the SQL editor)")
            if column not in {c.name for c in info.columns}:
                raise InvalidInput(f"table {ref.schema}.{ref.table} has no column {column!r}")
            if set(key) != set(info.primary_key):
                raise InvalidInput("key must give exactly the primary key columns: "
                                   + ", ".join(info.primary_key))
            where = sql.SQL(" AND ").join(
                sql.SQL("{} = {}").format(sql.Identifier(k), _literal(key[k]))
                for k in info.primary_key)
            stmt = sql.SQL("UPDATE {}.{} SET {} = {} WHERE {} RETURNING *").format(
                sql.Identifier(ref.schema), sql.Identifier(ref.table), sql.Identifier(column),
                _literal(value), where)
            text = stmt.as_string(conn)
            try:
                with conn.transaction():
                    cur = conn.execute(text)
                    rows = cur.fetchall()
                    names = [d.name for d in cur.description or []]
                    if len(rows) != 1:
                        raise NotFound("no row has that primary key (deleted meanwhile?)")
            except psycopg.Error as exc:
                raise _as_argon(sql_error(exc, 0)) from None
        return CellEdit(sql=text, row={n: _plain(v) for n, v in zip(names, rows[0],
                                                                    strict=True)})


def _describe(conn: psycopg.Connection, ref: TableRef) -> TableInfo:
    regclass = ref.regclass()
    try:
        cols = conn.execute(_COLUMNS, (regclass,)).fetchall()
        idx = conn.execute(_INDEXES, (regclass,)).fetchall()
    except psycopg.errors.UndefinedTable:
        raise NotFound(f"table {ref.schema}.{ref.table} not found in {ref.database}") from None
    except psycopg.errors.InvalidSchemaName:
        raise NotFound(f"schema {ref.schema} not found in {ref.database}") from None
    indexes = [IndexInfo(name=r[0], definition=r[1], unique=bool(r[2]), primary=bool(r[3]),
                         columns=list(r[4])) for r in idx]
    pk = next((i.columns for i in indexes if i.primary), [])
    columns = [ColumnInfo(name=r[0], type=r[1], nullable=bool(r[2]), default=r[3],
                          primary_key=r[0] in pk) for r in cols]
    return TableInfo(schema=ref.schema, name=ref.table, columns=columns, indexes=indexes,
                     primary_key=pk)


def _literal(value: Any) -> sql.Composable:
    """A value as SQL text: strings as untyped literals, so Postgres casts them to the
    column's type (``'2026-01-01'`` into a date); JSON objects and lists as JSON text."""
    if value is None:
        return sql.SQL("NULL")
    if isinstance(value, bool):
        return sql.SQL("true" if value else "false")
    if isinstance(value, int | float):
        return sql.Literal(str(value))
    if isinstance(value, dict | list):
        import json  # noqa: PLC0415
        return sql.Literal(json.dumps(value))
    return sql.Literal(str(value))


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _as_argon(err: SqlError) -> Exception:
    text = f"{err.message} (SQLSTATE {err.sqlstate})"
    if err.sqlstate == "42501":
        return Conflict(f"permission denied: {text}")
    return InvalidInput(text)
