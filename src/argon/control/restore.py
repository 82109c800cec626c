"""Restore and reset: give a branch another state, keeping its id, name and endpoints.

The new state is built as a new timeline (like a branch), then one metadata transaction
swaps the branch's ``timeline_id`` (and, with ``preserve_under_name``, adds a branch
holding the old timeline).  A crash before the swap leaves the old state and an orphan
timeline (removed by start-up repair); after it, the new state and possibly an
unreferenced old timeline (removed too).  Never a mix.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select, update

from argon.control import ids, validation
from argon.control.models import Branch, BranchState, Mutation, OperationAction
from argon.control.operations import rolled_back
from argon.control.requests import BranchRestore
from argon.control.timetravel import EphemeralCompute, parse_point
from argon.errors import ArgonError, Conflict, InvalidInput, NotFound
from argon.meta import tables as t
from argon.storage.pitr import PointInTime

if TYPE_CHECKING:
    from argon.control.branches import BranchService

logger = logging.getLogger(__name__)


class Restorer:
    def __init__(self, svc: BranchService) -> None:
        self.svc = svc
        self.ctx = svc.ctx

    def restore(self, project_id: str, branch_id: str, req: BranchRestore) -> Mutation[Branch]:
        point = parse_point(req.source_lsn, req.source_timestamp)
        with self.ctx.tx() as conn:
            row = self.svc.row(conn, project_id, branch_id)
            source = self.svc.row(conn, project_id, req.source_branch_id)
            if row.protected:
                raise Conflict(f"branch {row.name} is protected; unprotect it before "
                               "restoring or resetting it")
            if row.state != BranchState.READY.value:
                raise Conflict(f"branch {row.name} is {row.state}; retry when it is ready")
            own = source.id == row.id
            children = list(conn.execute(select(t.branches.c.name).where(
                t.branches.c.parent_id == row.id)).scalars())
            keep = req.preserve_under_name
            if own and point is None:
                raise InvalidInput("restoring a branch from itself needs source_lsn or "
                                   "source_timestamp (a point of its own history)")
            if (own or children) and not keep:
                why = "its own history" if own else f"child branches ({', '.join(children)})"
                raise InvalidInput(f"branch {row.name} is restored from {why}: give "
                                   "preserve_under_name to keep its current state as a "
                                   "branch of that name")
            if keep is not None:
                keep = validation.name(keep, "preserve_under_name")
                if conn.execute(select(t.branches.c.id).where(
                        t.branches.c.project_id == project_id,
                        t.branches.c.name == keep)).first():
                    raise Conflict(f"branch with name {keep!r} already exists; choose another "
                                   "preserve_under_name")
            if not own and _is_descendant(conn, source.id, row.id) and not keep:
                raise InvalidInput(f"{source.name} descends from {row.name}: preserve the "
                                   "old state with preserve_under_name")
            eps = list(conn.execute(select(t.endpoints.c.id).where(
                t.endpoints.c.branch_id == row.id)).scalars())
            source_ep = conn.execute(select(t.endpoints.c.id).where(
                t.endpoints.c.branch_id == source.id,
                t.endpoints.c.type == "read_write")).scalar()
            # The new state is a new timeline: refuse a full disk before marking anything.
            self.ctx.storage.require_space_for_branch(source.timeline_id,
                                                      f"restore branch {row.name}")
            conn.execute(update(t.branches).where(t.branches.c.id == row.id).values(
                state=BranchState.RESETTING.value, updated_at=self.ctx.clock()))
            op = self.svc.oplog.begin(conn, project_id, OperationAction.CREATE_TIMELINE,
                                      branch_id=row.id)
        new_tl = ids.timeline_id()
        try:
            with self.ctx.locks.hold(f"branch:{row.id}", wait=30, what=f"branch {row.name}"):
                point_lsn, point_time = self._build(new_tl, source, source_ep, point)
                was_running = [ep for ep in eps if self.svc.runtime.running(ep) is not None]
                if keep:
                    # Leave a commit after any past time in the preserved timeline.
                    self._close_history(row, eps)
                for ep in eps:
                    self.svc.runtime.suspend(ep, reason=f"branch {row.name} restored")
                kept_id = self._swap(op, row, source, new_tl, keep, own, point_lsn, point_time)
                if not keep:
                    self.svc.drop_timeline(row.timeline_id)
                self.svc.sizes.pop(row.timeline_id, None)
        except Exception as exc:
            if self._referenced(new_tl):   # swapped and recorded as done: nothing to undo
                raise
            self.svc.oplog.fail(op, str(exc), also=lambda conn: conn.execute(
                update(t.branches).where(t.branches.c.id == row.id).values(
                    state=BranchState.READY.value)))
            self.ctx.storage.delete_timeline(new_tl)
            if isinstance(exc, ArgonError):
                raise
            raise rolled_back(f"restore of {row.name}", exc) from exc
        self.ctx.on_endpoints_changed()
        for ep in was_running:  # computes come back on the new state (sessions were ended)
            try:
                self.svc.runtime.ensure_running(ep)
            except ArgonError as e:
                logger.warning("restored %s but its compute %s did not start: %s", row.name,
                               ep, e.message)
        logger.info("restored branch %s from %s at %s%s", row.name, source.name,
                    point or "head", f" (old state kept as {kept_id})" if kept_id else "")
        return Mutation(self.svc.get(project_id, row.id), self.svc.oplog.get_many([op]))

    def _build(self, new_tl: str, source, source_ep: str | None,  # type: ignore[no-untyped-def]
               point: PointInTime | None):  # type: ignore[no-untyped-def]
        if point is None:
            bp = self.svc._clone(source.timeline_id, new_tl, source_ep, source.name)  # noqa: SLF001
            return str(bp.lsn), bp.timestamp
        bp = self.svc.tt.branch_at(new_tl, source, source_ep, point)
        return (str(bp.lsn) if point.lsn is not None else None), bp.timestamp

    def _close_history(self, row, eps: list[str]) -> None:  # type: ignore[no-untyped-def]
        for ep in eps:
            if self.svc.runtime.running(ep) is None:
                continue
            try:
                with self.ctx.computes.connect(self.svc.runtime.spec(ep)) as conn:
                    conn.execute("SELECT pg_current_xact_id()")
            except Exception as e:  # noqa: BLE001 - only improves later time targets
                logger.info("could not write a closing commit on %s: %s", row.name, e)

    def _swap(self, op: str, row, source, new_tl: str, keep: str | None, own: bool,  # type: ignore[no-untyped-def]
              point_lsn: str | None, point_time) -> str | None:  # type: ignore[no-untyped-def]
        """The branch on its new timeline, committed with the operation's end."""
        now = self.ctx.clock()
        kept_id = ids.branch_id() if keep else None

        def swap(conn: Connection) -> None:
            parent_id = kept_id if own else source.id
            conn.execute(update(t.branches).where(t.branches.c.id == row.id).values(
                timeline_id=new_tl, state=BranchState.READY.value, last_reset_at=now,
                updated_at=now))
            if kept_id is not None:
                conn.execute(update(t.branches).where(t.branches.c.parent_id == row.id)
                             .values(parent_id=kept_id, updated_at=now))
                conn.execute(t.branches.insert().values(
                    id=kept_id, project_id=row.project_id, timeline_id=row.timeline_id,
                    parent_id=row.parent_id, parent_lsn=row.parent_lsn,
                    parent_timestamp=row.parent_timestamp, name=keep,
                    state=BranchState.READY.value, is_default=False, protected=False,
                    init_source=row.init_source, expires_at=None, created_at=now,
                    updated_at=now))
                from argon.control.branches import _copy_roles_and_databases
                _copy_roles_and_databases(conn, row.id, kept_id, now)
            conn.execute(update(t.branches).where(t.branches.c.id == row.id).values(
                parent_id=parent_id, parent_lsn=point_lsn, parent_timestamp=point_time))
            if not own:
                # Roles and databases live inside Postgres: the new state has the source's.
                conn.execute(t.roles.delete().where(t.roles.c.branch_id == row.id))
                conn.execute(t.databases.delete().where(t.databases.c.branch_id == row.id))
                from argon.control.branches import _copy_roles_and_databases
                _copy_roles_and_databases(conn, source.id, row.id, now)

        self.svc.oplog.finish(op, also=swap)
        # the branch's Postgres now holds other verifiers: the proxy's cache must drop them
        self.ctx.events.roles_changed(row.id)
        return kept_id

    def _referenced(self, timeline_id: str) -> bool:
        with self.ctx.tx() as conn:
            return conn.execute(select(t.branches.c.id).where(
                t.branches.c.timeline_id == timeline_id)).first() is not None


def _is_descendant(conn, branch_id: str, ancestor_id: str) -> bool:  # type: ignore[no-untyped-def]
    current, seen = branch_id, set()
    while current is not None and current not in seen:
        seen.add(current)
        current = conn.execute(select(t.branches.c.parent_id).where(
            t.branches.c.id == current)).scalar()
        if current == ancestor_id:
            return True
    return False


def schema_only(tt, timeline_id: str, pg_version: int) -> None:  # type: ignore[no-untyped-def]
    """Empty every user table of a fresh branch (its schema stays): a temporary compute
    runs ``TRUNCATE ... RESTART IDENTITY CASCADE`` in each database."""
    with tt.temporary_compute(timeline_id, pg_version) as spec:
        computes = tt.ctx.computes
        with computes.connect(spec) as conn:
            dbs = [r[0] for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate")]
        for db in dbs:
            with computes.connect(spec, dbname=db) as conn:
                row = conn.execute(
                    "SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN "
                    "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
                    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = "
                    "'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')").fetchone()
                if row and row[0]:
                    conn.execute(f"TRUNCATE {row[0]} RESTART IDENTITY CASCADE")
        with computes.connect(spec) as conn:
            conn.execute("CHECKPOINT")


def ephemeral_at(svc: BranchService, ref: str, point: PointInTime | None) -> EphemeralCompute:
    if point is None:
        raise InvalidInput("a time-travel query needs neon_lsn:<lsn> or neon_timestamp:<time>")
    with svc.ctx.tx() as conn:
        row = conn.execute(select(t.branches).where(t.branches.c.id == ref)).first()
        if row is None:
            ep = conn.execute(select(t.endpoints.c.branch_id).where(
                t.endpoints.c.id == ref)).scalar()
            if ep is not None:
                row = conn.execute(select(t.branches).where(t.branches.c.id == ep)).first()
        if row is None:
            raise NotFound(f"no branch or endpoint {ref!r}")
        source_ep = conn.execute(select(t.endpoints.c.id).where(
            t.endpoints.c.branch_id == row.id, t.endpoints.c.type == "read_write")).scalar()
    tmp = ids.timeline_id()
    svc.tt.branch_at(tmp, row, source_ep, point)
    try:
        return svc.tt.start_ephemeral(tmp, row.id, str(point), svc._pg_version(row.project_id))  # noqa: SLF001
    except Exception:
        svc.ctx.storage.delete_timeline(tmp)
        raise
