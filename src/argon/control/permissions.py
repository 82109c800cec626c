"""Project permissions (Neon's project sharing): e-mail addresses granted access.

Argon has one account: every API key already reaches every project, and there are no
other users to share with.  Grants are recorded and listed as Neon shows them (so scripts
and Terraform that manage them keep working) but change no one's access.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import select, update

from argon.control.context import ControlContext
from argon.errors import InvalidInput, NotFound
from argon.meta import tables as t

# What Neon's schema calls ``format: email``: one @, no spaces, a dot in the domain.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL = 256


def _item(r: Any) -> dict[str, Any]:
    out = {"id": r.id, "granted_to_email": r.email, "granted_at": r.granted_at}
    if r.revoked_at is not None:
        out["revoked_at"] = r.revoked_at
    return out


class PermissionService:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx

    def _require_project(self, conn: Any, project_id: str) -> None:
        if conn.execute(select(t.projects.c.id).where(t.projects.c.id == project_id)
                        ).first() is None:
            raise NotFound(f"project {project_id!r} not found")

    def list(self, project_id: str) -> list[dict[str, Any]]:
        """Grants in force, oldest first."""
        with self.ctx.tx() as conn:
            self._require_project(conn, project_id)
            rows = conn.execute(select(t.project_permissions).where(
                t.project_permissions.c.project_id == project_id,
                t.project_permissions.c.revoked_at.is_(None)).order_by(
                t.project_permissions.c.granted_at)).all()
        return [_item(r) for r in rows]

    def grant(self, project_id: str, email: str) -> dict[str, Any]:
        """Record a grant; granting an address that already has one returns that one."""
        email = email.strip()
        if not email or len(email) > MAX_EMAIL or not _EMAIL.match(email):
            raise InvalidInput(f"email {email!r} is not an e-mail address")
        with self.ctx.tx() as conn:
            self._require_project(conn, project_id)
            existing = conn.execute(select(t.project_permissions).where(
                t.project_permissions.c.project_id == project_id,
                t.project_permissions.c.email == email,
                t.project_permissions.c.revoked_at.is_(None))).first()
            if existing is not None:
                return _item(existing)
            pid = str(uuid.uuid4())
            conn.execute(t.project_permissions.insert().values(
                id=pid, project_id=project_id, email=email, granted_at=self.ctx.clock(),
                revoked_at=None))
            row = conn.execute(select(t.project_permissions).where(
                t.project_permissions.c.id == pid)).one()
        return _item(row)

    def revoke(self, project_id: str, permission_id: str) -> dict[str, Any]:
        with self.ctx.tx() as conn:
            self._require_project(conn, project_id)
            cond = (t.project_permissions.c.project_id == project_id,
                    t.project_permissions.c.id == permission_id,
                    t.project_permissions.c.revoked_at.is_(None))
            if conn.execute(select(t.project_permissions.c.id).where(*cond)).first() is None:
                raise NotFound(f"permission {permission_id!r} not found in project "
                               f"{project_id!r}")
            conn.execute(update(t.project_permissions).where(*cond).values(
                revoked_at=self.ctx.clock()))
            row = conn.execute(select(t.project_permissions).where(
                t.project_permissions.c.id == permission_id)).one()
        return _item(row)
