"""Finding a project or a branch inside a service's transaction, with Neon's 404s.

Branches are found by id or by name: the API passes ids, the CLI and neonctl users
often pass names.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from argon.control import key_scope
from argon.errors import NotFound
from argon.meta import tables as t


def require_project(conn: Connection, project_id: str) -> None:
    key_scope.check_project(project_id)   # a project-scoped key: another project is 404
    if conn.execute(select(t.projects.c.id).where(t.projects.c.id == project_id)).first() is None:
        raise NotFound(f"project {project_id!r} not found")


def branch_row(conn: Connection, project_id: str, branch_ref: str) -> Any:
    """The branch row of ``project_id`` whose id or name is ``branch_ref``."""
    require_project(conn, project_id)
    row = conn.execute(select(t.branches).where(
        t.branches.c.project_id == project_id,
        (t.branches.c.id == branch_ref) | (t.branches.c.name == branch_ref))).first()
    if row is None:
        raise NotFound(f"branch {branch_ref!r} not found in project {project_id}")
    return row
