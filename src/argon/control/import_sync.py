"""``argon import --sync`` / ``--cutover``: keep an imported branch in step with its source
by PostgreSQL's logical replication, then cut over.

The usual pattern (Neon's migration guides): the schema is copied with ``pg_dump
--schema-only | pg_restore``, then a subscription on the Argon branch, made as the
branch's owner, copies the rows (``copy_data = true``) and streams the changes. The
publication is the user's (``--publication``) or made by Argon on the source.

Nothing about a running sync is kept in Argon's metadata: it is all in the subscription.
Its name is ``argon_import_<branch>``; the publication Argon made has the same name (so a
cutover knows to drop it, and a user's publication is never dropped); the slot on the
source is the subscription's own (dropped by ``DROP SUBSCRIPTION``); the source's
connection string, password included as PostgreSQL requires for a non-superuser owner,
is the subscription's ``subconninfo``, read by Argon as the compute's superuser. An Argon
restart loses nothing.

The subscriber does not need the project's ``enable_logical_replication`` (only a
publisher needs ``wal_level = logical``), so an import with --sync leaves the project
setting alone and restarts no compute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import select

from argon.control import lookup
from argon.control.context import ControlContext
from argon.control.runtime import EndpointRuntime
from argon.errors import Conflict, InvalidInput, NotFound
from argon.meta import tables as t

logger = logging.getLogger(__name__)

PREFIX = "argon_import_"
CONNECT_TIMEOUT = 15
# pg_subscription_rel.srsubstate: i = init, d = copying, f = copy done, s = syncing, r = ready
_COPYING = ("i", "d", "f", "s")


def sync_name(branch_id: str) -> str:
    """Subscription (and Argon-made publication, and slot) name for a branch: 63 bytes max."""
    return (PREFIX + branch_id.removeprefix("br-").replace("-", "_"))[:63].lower()


@dataclass(frozen=True)
class SyncPlan:
    """What the checks of the source found: made before anything exists."""
    source_uri: str          # with the password: the subscription's CONNECTION
    publication: str | None  # the user's; None: Argon makes one
    tables: tuple[str, ...]  # qualified, quoted names Argon's publication lists (non-superuser)
    no_identity: tuple[str, ...]   # tables whose UPDATE/DELETE the publication blocks


def check_source(uri: str, publication: str | None) -> SyncPlan:
    """Refuse, before anything is made, a source that cannot be synced; the message names
    the setting or the right that is missing."""
    try:
        return _check_source(uri, publication)
    except psycopg.Error as e:
        raise InvalidInput(f"cannot check the source for --sync: {e}".strip()) from None


def _check_source(uri: str, publication: str | None) -> SyncPlan:
    params = conninfo_to_dict(uri)
    if not params.get("password"):
        raise InvalidInput("--sync needs the source's password in its connection string: "
                           "the subscription on Argon connects with it (PostgreSQL asks "
                           "a non-superuser subscription owner for one)")
    with psycopg.connect(uri, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as conn:
        level = _one(conn, "SHOW wal_level")
        if level != "logical":
            raise InvalidInput(f"the source has wal_level = {level}; --sync needs "
                               "wal_level = logical on the source (set it in its "
                               "postgresql.conf or provider's settings and restart it)")
        superuser, replication, role = conn.execute(
            "SELECT rolsuper, rolreplication, rolname FROM pg_roles "
            "WHERE rolname = current_user").fetchone() or (False, False, "?")
        if not (superuser or replication):
            raise InvalidInput(f"role {role} on the source may not replicate: it needs the "
                               f"REPLICATION attribute (ALTER ROLE {role} REPLICATION)")
        user_tables = conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname), pg_has_role(c.relowner, 'USAGE'),"
            " c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM "
            "pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
            "AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog', "
            "'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1").fetchall()
        no_identity = tuple(r[0] for r in user_tables if r[2])
        if publication is not None:
            if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s",
                            (publication,)).fetchone() is None:
                raise InvalidInput(f"publication {publication!r} does not exist on the source")
            return SyncPlan(uri, publication, (), no_identity)
        if not superuser:
            if not _one(conn, "SELECT has_database_privilege(current_database(), 'CREATE')"):
                raise InvalidInput(f"role {role} may not create a publication on the source "
                                   "(it needs CREATE on the database); name one with "
                                   "--publication")
            if not user_tables:
                raise InvalidInput("the source has no tables to publish")
            foreign = [r[0] for r in user_tables if not r[1]]
            if foreign:
                raise InvalidInput(f"role {role} does not own {', '.join(foreign[:5])} on "
                                   "the source, so it cannot publish them; create a "
                                   "publication as their owner and name it with --publication")
    return SyncPlan(uri, None, () if superuser else tuple(r[0] for r in user_tables),
                    no_identity)


def start(plan: SyncPlan, branch_id: str, target_login: str) -> str:
    """The publication (unless the user's) on the source, then the subscription on the
    branch as its owner. Returns the subscription's name; undoes its own half on failure."""
    name = sync_name(branch_id)
    publication = plan.publication or name
    if plan.publication is None:
        with psycopg.connect(plan.source_uri, connect_timeout=CONNECT_TIMEOUT,
                             autocommit=True) as src:
            # FOR ALL TABLES is for superusers; others list the tables they own
            what = (sql.SQL("FOR TABLE {}").format(sql.SQL(", ").join(
                sql.SQL(n) for n in plan.tables)) if plan.tables else sql.SQL("FOR ALL TABLES"))
            src.execute(sql.SQL("CREATE PUBLICATION {} ").format(sql.Identifier(name)) + what)
    try:
        with psycopg.connect(target_login, autocommit=True) as dst:
            dst.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} "
                                "WITH (copy_data = true)").format(
                sql.Identifier(name), sql.Literal(plan.source_uri),
                sql.Identifier(publication)))
    except BaseException:
        _drop_on_source(plan.source_uri, name, drop_publication=plan.publication is None,
                        drop_slot=True)
        raise
    return name


def _drop_on_source(uri: str, name: str, *, drop_publication: bool, drop_slot: bool) -> None:
    try:
        with psycopg.connect(uri, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as src:
            if drop_slot:
                src.execute("SELECT pg_drop_replication_slot(slot_name) FROM "
                            "pg_replication_slots WHERE slot_name = %s AND NOT active", (name,))
            if drop_publication:
                src.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
                    sql.Identifier(name)))
    except psycopg.Error:
        logger.exception("could not clean up the source after a failed --sync")


@dataclass(frozen=True)
class _Sub:
    oid: int
    name: str
    database: str
    conninfo: str
    slot: str | None
    publications: tuple[str, ...]
    endpoint_id: str
    branch_id: str

    @property
    def argon_publication(self) -> bool:
        return self.publications == (self.name,)


class ImportSyncService:
    def __init__(self, ctx: ControlContext, runtime: EndpointRuntime) -> None:
        self.ctx, self.runtime = ctx, runtime

    def _find(self, project_id: str, branch_ref: str) -> _Sub:
        with self.ctx.tx() as conn:
            row = lookup.branch_row(conn, project_id, branch_ref)
            ep = conn.execute(select(t.endpoints.c.id).where(
                t.endpoints.c.branch_id == row.id,
                t.endpoints.c.type == "read_write")).scalar()
        if ep is None:
            raise Conflict(f"branch {row.name} has no read-write compute")
        name = sync_name(row.id)
        with self.runtime.connect(str(ep)) as pg:
            found = pg.execute(
                "SELECT s.oid, d.datname, s.subconninfo, s.subslotname, s.subpublications "
                "FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
                "WHERE s.subname = %s", (name,)).fetchone()
        if found is None:
            raise NotFound(f"branch {row.name} has no import sync running (no subscription "
                           f"{name}); start one with argon import --sync")
        return _Sub(int(found[0]), name, str(found[1]), str(found[2]),
                    found[3], tuple(found[4] or ()), str(ep), str(row.id))

    def status(self, project_id: str, branch_ref: str) -> dict[str, Any]:
        """Progress of the copy and lag of the stream, from both sides."""
        sub = self._find(project_id, branch_ref)
        self.runtime.session_started(sub.endpoint_id)
        try:
            return self._status(sub)
        finally:
            self.runtime.session_ended(sub.endpoint_id)

    def _status(self, sub: _Sub) -> dict[str, Any]:
        with self.runtime.connect(sub.endpoint_id, dbname=sub.database) as pg:
            states = dict(pg.execute(
                "SELECT srsubstate::text, count(*) FROM pg_subscription_rel "
                "WHERE srsubid = %s GROUP BY 1", (sub.oid,)).fetchall())
            worker = pg.execute(
                "SELECT received_lsn::text, latest_end_lsn::text, latest_end_time "
                "FROM pg_stat_subscription WHERE subid = %s AND relid IS NULL "
                # parallel apply workers (16+) have no LSNs: the leader first
                "ORDER BY received_lsn IS NULL LIMIT 1",
                (sub.oid,)).fetchone()
        source_error = None
        current = confirmed = lag = active = None
        try:
            with psycopg.connect(sub.conninfo, connect_timeout=CONNECT_TIMEOUT,
                                 autocommit=True) as src:
                current, confirmed, lag, active = src.execute(
                    "SELECT pg_current_wal_lsn()::text, s.confirmed_flush_lsn::text, "
                    "pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint, "
                    "s.active FROM (SELECT 1) x LEFT JOIN pg_replication_slots s "
                    "ON s.slot_name = %s", (sub.slot,)).fetchone() or (None,) * 4
        except psycopg.Error as e:   # the branch's side is still worth showing
            source_error = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        copying = sum(n for s, n in states.items() if s in _COPYING)
        params = conninfo_to_dict(sub.conninfo)
        return {
            "subscription": sub.name, "database_name": sub.database,
            "branch_id": sub.branch_id,
            "source": {"host": params.get("host"), "port": params.get("port"),
                       "dbname": params.get("dbname"), "user": params.get("user")},
            "publication": ",".join(sub.publications),
            "publication_made_by_argon": sub.argon_publication,
            "state": "copying" if copying else "streaming",
            "tables_ready": states.get("r", 0), "tables_copying": copying,
            "source_lsn": current, "received_lsn": worker[0] if worker else None,
            "applied_lsn": worker[1] if worker else None,
            "confirmed_flush_lsn": confirmed, "lag_bytes": lag,
            "last_applied_at": worker[2].isoformat() if worker and worker[2] else None,
            "streaming": bool(active) and worker is not None,
            "source_error": source_error,
        }

    def cutover(self, project_id: str, branch_ref: str, timeout: float = 300,
                progress: Callable[[str, str], None] = lambda _p, _m: None) -> dict[str, Any]:
        """Wait until the branch has everything the source had committed when the cutover
        began, advance its sequences to the source's, drop the subscription (its slot on
        the source goes with it) and Argon's publication; rows counted on both sides."""
        from argon.control.imports import count_rows_between   # noqa: PLC0415 - no cycle

        sub = self._find(project_id, branch_ref)
        self.runtime.session_started(sub.endpoint_id)
        try:
            with psycopg.connect(sub.conninfo, connect_timeout=CONNECT_TIMEOUT,
                                 autocommit=True) as src:
                goal = str(_one(src, "SELECT pg_current_wal_lsn()::text"))
                progress("cutover", f"waiting for the branch to reach the source's {goal}")
                deadline = time.monotonic() + timeout
                while True:
                    st = self._status(sub)
                    reached = _one(src, "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM "
                                   "pg_replication_slots WHERE slot_name = %s",
                                   (goal, sub.slot))
                    if st["tables_copying"] == 0 and reached:
                        break
                    if time.monotonic() > deadline:
                        raise Conflict(f"the branch did not catch up with the source in "
                                       f"{timeout:.0f} s ({st['tables_copying']} tables "
                                       f"still copying, lag {st['lag_bytes']} bytes); "
                                       "the sync keeps running")
                    time.sleep(0.2)
                progress("cutover", f"caught up ({st['tables_ready']} tables)")
                with self.runtime.connect(sub.endpoint_id, dbname=sub.database) as dst:
                    sequences = _advance_sequences(src, dst)
                    progress("cutover", f"{len(sequences)} sequences advanced")
                    dst.execute(sql.SQL("DROP SUBSCRIPTION {}").format(
                        sql.Identifier(sub.name)))
                    if sub.argon_publication:
                        src.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
                            sql.Identifier(sub.name)))
                    progress("cutover", "subscription dropped (with its slot on the source)"
                             + (", and Argon's publication" if sub.argon_publication else ""))
                    tables = count_rows_between(src, dst)
        except psycopg.Error as e:
            detail = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
            raise Conflict(f"cutover stopped: {detail}") from None
        finally:
            self.runtime.session_ended(sub.endpoint_id)
        return {"branch_id": sub.branch_id, "database_name": sub.database,
                "source_lsn": goal, "sequences": sequences,
                "publication_dropped": sub.argon_publication,
                "tables": [c.__dict__ for c in tables],
                "mismatched": [f"{c.schema}.{c.table}" for c in tables
                               if c.source_rows != c.target_rows]}


def _advance_sequences(src: psycopg.Connection, dst: psycopg.Connection) -> dict[str, int]:
    """Logical replication does not carry sequence values: set the branch's to the source's
    (only sequences the source has used and the branch has)."""
    done: dict[str, int] = {}
    for qualified, value in src.execute(
            "SELECT format('%I.%I', schemaname, sequencename), last_value FROM pg_sequences "
            "WHERE last_value IS NOT NULL ORDER BY 1").fetchall():
        if _one(dst, "SELECT to_regclass(%s) IS NOT NULL", (qualified,)):
            dst.execute("SELECT setval(%s::regclass, %s, true)", (qualified, value))
            done[qualified] = int(value)
    return done


def _one(conn: psycopg.Connection, query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    return row[0] if row else None
