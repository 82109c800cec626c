"""The single local organization, and who a request authenticates as (``GET /auth``).

Neon's tools ask for the caller's organizations before they pick a project (neonctl
without ``--project-id``) or an organization (``--org-id``), and its MCP server asks
``GET /auth`` before anything else.  An Argon install has one account, so it reports one
organization that owns every project: neonctl then lists that organization's projects
and, when there is exactly one, uses it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from argon.control.context import ControlContext
from argon.control.platform import USER_ID
from argon.errors import NotFound
from argon.meta import tables as t

ORG_ID = "org-argon-local"
ORG_NAME = "Argon"


def require_member(org_id: str | None) -> None:
    """Neon answers 404 when the caller is not a member of ``org_id``."""
    if org_id is not None and org_id != ORG_ID:
        raise NotFound(f"organization {org_id!r} not found; this install has one, "
                       f"{ORG_ID!r}")


class OrganizationService:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx

    def auth_details(self, org_id: str | None = None) -> dict[str, str]:
        """A personal key belongs to the one local user (Neon's ``api_key_user``); an
        organization key (also a project-scoped one) to the organization (``api_key_org``)."""
        if org_id is not None:
            return {"account_id": org_id, "auth_method": "api_key_org"}
        return {"account_id": USER_ID, "auth_method": "api_key_user"}

    def _since(self) -> datetime:
        # The organization is as old as the install's first record.
        with self.ctx.tx() as conn:
            first = conn.execute(select(func.min(t.api_keys.c.created_at))).scalar()
        return first or self.ctx.clock()

    def local(self) -> dict[str, Any]:
        since = self._since()
        return {"id": ORG_ID, "name": ORG_NAME, "handle": ORG_ID, "plan": "self_hosted",
                "managed_by": "argon", "created_at": since, "updated_at": since,
                "allow_hipaa_projects": False, "require_mfa": False}

    def list(self) -> list[dict[str, Any]]:
        return [self.local()]

    def get(self, org_id: str) -> dict[str, Any]:
        require_member(org_id)
        return self.local()
