"""API keys: random secrets shown once, stored only as SHA-256 digests.

The secrets are ``napi_`` and 64 random characters (Neon's format; older keys without the
prefix keep working), so a fast digest is enough (no password stretching needed) and lets
every request be checked in microseconds.  Keys are personal, of the organization, or
project-scoped (an organization key with ``project_id``; ``argon.control.key_scope``
enforces what that means).  The time and address of last use are written at most once a
minute per key, so a busy client does not cost a metadata write per request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time

from sqlalchemy import select, update

from argon.control import ids, key_scope, validation
from argon.control.context import ControlContext
from argon.control.lookup import require_project
from argon.control.organization import require_member
from argon.control.models import ApiKey
from argon.control.rows import api_key_from_row
from argon.errors import InvalidInput, NotFound, is_disk_full
from argon.meta import tables as t

logger = logging.getLogger(__name__)

LAST_USED_EVERY_S = 60.0   # at most one last-used write per key per minute


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyService:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self._last_write: dict[int, float] = {}   # key id -> monotonic time of last write
        self._lock = threading.Lock()

    def create(self, name: str, *, org_id: str | None = None,
               project_id: str | None = None) -> tuple[ApiKey, str]:
        """A personal key, or with ``org_id`` an organization key, or with ``project_id``
        too a key for that project only (Neon's ``createOrgApiKey``)."""
        key_scope.check_account_wide("managing API keys")
        require_member(org_id)
        name = validation.name(name, "API key name")
        if project_id is not None and org_id is None:
            raise InvalidInput("a project-scoped API key is an organization key: "
                               "create it under /organizations/{org_id}/api_keys")
        secret = ids.api_key_secret()
        with self.ctx.tx() as conn:
            if project_id is not None:
                require_project(conn, project_id)
            key_id = conn.execute(t.api_keys.insert().values(
                name=name, secret_hash=_digest(secret), created_at=self.ctx.clock(),
                revoked=False, org_id=org_id, project_id=project_id)).inserted_primary_key[0]
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.id == key_id)).one()
        return api_key_from_row(row), secret

    def list(self, org_id: str | None = None) -> list[ApiKey]:
        """Live personal keys, or the organization's keys with ``org_id``."""
        key_scope.check_account_wide("managing API keys")
        require_member(org_id)
        owner = (t.api_keys.c.org_id.is_(None) if org_id is None
                 else t.api_keys.c.org_id == org_id)
        with self.ctx.tx() as conn:
            rows = conn.execute(select(t.api_keys).where(~t.api_keys.c.revoked, owner)
                                .order_by(t.api_keys.c.id)).all()
        return [api_key_from_row(r) for r in rows]

    def revoke(self, key_id: int, org_id: str | None = None) -> ApiKey:
        key_scope.check_account_wide("managing API keys")
        require_member(org_id)
        owner = (t.api_keys.c.org_id.is_(None) if org_id is None
                 else t.api_keys.c.org_id == org_id)
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.id == key_id,
                                                        ~t.api_keys.c.revoked, owner)).first()
            if row is None:
                raise NotFound(f"API key {key_id} not found")
            conn.execute(update(t.api_keys).where(t.api_keys.c.id == key_id).values(revoked=True))
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.id == key_id)).one()
        with self._lock:
            self._last_write.pop(key_id, None)
        return api_key_from_row(row)

    def authenticate(self, secret: str, addr: str | None = None) -> ApiKey | None:
        if not secret or len(secret) > 512:
            return None
        digest = _digest(secret)
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.secret_hash == digest,
                                                        ~t.api_keys.c.revoked)).first()
            if row is None or not hmac.compare_digest(row.secret_hash, digest):
                return None
        if self._due(row.id):
            self._record_use(row.id, addr)
        return api_key_from_row(row)

    def _due(self, key_id: int) -> bool:
        """True when this key's last use has not been written in the last minute; claims
        the slot so concurrent requests skip the write."""
        now = time.monotonic()
        with self._lock:
            last = self._last_write.get(key_id)
            if last is not None and now - last < LAST_USED_EVERY_S:
                return False
            self._last_write[key_id] = now
        return True

    def _record_use(self, key_id: int, addr: str | None) -> None:
        values: dict[str, object] = {"last_used_at": self.ctx.clock()}
        if addr:
            values["last_used_from_addr"] = addr[:64]
        try:
            with self.ctx.tx() as conn:
                conn.execute(update(t.api_keys).where(t.api_keys.c.id == key_id)
                             .values(**values))
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            # A full disk must not lock every API client out (reads still work).
            logger.warning("could not record the use of API key %s: %s", key_id, exc)
