"""Sizes of every branch of a project at once: bytes on disk and bytes of history.

The console's branch tree shows both for every row; one call for the whole project keeps
a 1,000-branch tree to one request.  Bytes on disk (what Neon's ``logical_size`` reports
here) come from the reconciler's cache (``ctx.sizes``); history (WAL archive and
snapshots, part of those bytes) is measured here, since only the tree asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from argon.control.context import ControlContext
from argon.control.lookup import require_project
from argon.errors import ArgonError
from argon.meta import tables as t


@dataclass(frozen=True)
class BranchSize:
    branch_id: str
    logical_size: int
    history_size: int


def project_branch_sizes(ctx: ControlContext, project_id: str) -> list[BranchSize]:
    with ctx.tx() as conn:
        require_project(conn, project_id)
        rows = conn.execute(select(t.branches.c.id, t.branches.c.timeline_id).where(
            t.branches.c.project_id == project_id)).all()
    return [BranchSize(r.id, _on_disk(ctx, r.timeline_id),
                       ctx.storage.history_bytes(r.timeline_id)) for r in rows]


def _on_disk(ctx: ControlContext, timeline_id: str) -> int:
    """The cached size, or (a branch newer than the reconciler's last pass) measured now
    and cached; a timeline that is gone or being made counts 0."""
    size = ctx.sizes.get(timeline_id)
    if size is None:
        try:
            size = ctx.sizes[timeline_id] = ctx.storage.size_bytes(timeline_id)
        except (ArgonError, OSError):
            return 0
    return size
