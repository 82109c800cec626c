"""Schemas of branches (``pg_dump --schema-only``) and their unified diff.

A schema at a past point is dumped from a throwaway timeline built at that point and
started read-only, then deleted.
"""

from __future__ import annotations

import difflib
import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from argon.compute import ComputeSpec
from argon.compute.process import NO_PASSFILE, child_env
from argon.control import ids
from argon.errors import ArgonError, Conflict, InvalidInput, NotFound
from argon.meta import tables as t
from argon.storage.pitr import PointInTime

if TYPE_CHECKING:
    from argon.control.branches import BranchService

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchemaDiff:
    base_branch_id: str
    branch_id: str
    db_name: str
    diff: str          # unified diff, empty when the schemas are equal


def _normalise(sql: str) -> str:
    # pg_dump 17.6+/18 brackets its output with \restrict <random key>: not schema.
    return "".join(line for line in sql.splitlines(keepends=True)
                   if not line.startswith(("\\restrict", "\\unrestrict")))


def _dump(svc: BranchService, spec: ComputeSpec, db_name: str) -> str:
    address = svc.ctx.computes.address(spec)
    if address is None:
        raise ArgonError(f"the compute for {db_name}'s schema stopped; retry")
    out = subprocess.run(
        [spec.install.bin("pg_dump"), "--schema-only", "--no-owner", "--no-privileges",
         "-h", address.host, "-p", str(address.port), "-U", "cloud_admin", db_name],
        capture_output=True, text=True, timeout=120,
        # run as Argon itself, not the Postgres account: another compute (same account)
        # could read the password from /proc/<pid>/environ
        env={**child_env(), "PGPASSWORD": spec.admin_password, "PGPASSFILE": NO_PASSFILE})
    if out.returncode != 0:
        raise ArgonError(f"pg_dump of {db_name} failed: {out.stderr.strip()}")
    return _normalise(str(out.stdout))


@contextmanager
def compute_for(svc: BranchService, row, point: PointInTime | None) -> Iterator[ComputeSpec]:  # type: ignore[no-untyped-def]
    """A running compute showing ``row``'s branch at its head or at ``point``."""
    with svc.ctx.tx() as conn:
        ep = conn.execute(select(t.endpoints.c.id).where(
            t.endpoints.c.branch_id == row.id, t.endpoints.c.type == "read_write")).scalar()
    version = svc._pg_version(row.project_id)  # noqa: SLF001 - same room
    if point is None and ep is not None:
        svc.runtime.ensure_running(ep)
        yield svc.runtime.spec(ep)
        return
    if point is None:
        with svc.ctx.locks.hold(f"branch:{row.id}", wait=30, what=f"branch {row.name}"):
            with svc.tt.temporary_compute(row.timeline_id, version) as spec:
                yield spec
        return
    tmp = ids.timeline_id()
    svc.tt.branch_at(tmp, row, ep, point)
    try:
        with svc.tt.temporary_compute(tmp, version, read_only=True) as spec:
            yield spec
    finally:
        svc.ctx.storage.delete_timeline(tmp)


def branch_schema(svc: BranchService, project_id: str, branch_id: str, db_name: str,
                  point: PointInTime | None) -> str:
    with svc.ctx.tx() as conn:
        row = svc.row(conn, project_id, branch_id)
        if conn.execute(select(t.databases.c.id).where(
                t.databases.c.branch_id == row.id, t.databases.c.name == db_name)).first() is None:
            raise NotFound(f"database {db_name!r} not found on branch {row.name}")
    with compute_for(svc, row, point) as spec:
        return _dump(svc, spec, db_name)


def compare_schema(svc: BranchService, project_id: str, branch_id: str, db_name: str,
                   base_branch_id: str | None, point: PointInTime | None,
                   base_point: PointInTime | None) -> SchemaDiff:
    """Unified diff from the base branch's schema (default: the parent) to this one's."""
    with svc.ctx.tx() as conn:
        row = svc.row(conn, project_id, branch_id)
        base_ref = base_branch_id or row.parent_id
        if base_ref is None:
            raise InvalidInput(f"branch {row.name} has no parent; give base_branch_id")
        base = svc.row(conn, project_id, base_ref)
    if base.id == row.id and point is None and base_point is None:
        raise Conflict("comparing a branch with itself at the same point gives no diff; "
                       "give lsn/timestamp or base_lsn/base_timestamp")
    base_sql = branch_schema(svc, project_id, base.id, db_name, base_point)
    sql = branch_schema(svc, project_id, row.id, db_name, point)
    diff = "".join(difflib.unified_diff(
        base_sql.splitlines(keepends=True), sql.splitlines(keepends=True),
        fromfile=f"{base.name}/{db_name}", tofile=f"{row.name}/{db_name}"))
    return SchemaDiff(base.id, row.id, db_name, diff)
