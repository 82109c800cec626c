"""API keys: random secrets shown once, stored only as SHA-256 digests.

The secrets are 64 random characters, so a fast digest is enough (no password
stretching needed) and lets every request be checked in microseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from sqlalchemy import select, update

from argon.control import ids, validation
from argon.control.context import ControlContext
from argon.control.models import ApiKey
from argon.control.rows import api_key_from_row
from argon.errors import NotFound, is_disk_full
from argon.meta import tables as t

logger = logging.getLogger(__name__)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyService:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx

    def create(self, name: str) -> tuple[ApiKey, str]:
        name = validation.name(name, "API key name")
        secret = ids.api_key_secret()
        with self.ctx.tx() as conn:
            key_id = conn.execute(t.api_keys.insert().values(
                name=name, secret_hash=_digest(secret), created_at=self.ctx.clock(),
                revoked=False)).inserted_primary_key[0]
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.id == key_id)).one()
        return api_key_from_row(row), secret

    def list(self) -> list[ApiKey]:
        with self.ctx.tx() as conn:
            rows = conn.execute(select(t.api_keys).where(~t.api_keys.c.revoked)
                                .order_by(t.api_keys.c.id)).all()
        return [api_key_from_row(r) for r in rows]

    def revoke(self, key_id: int) -> ApiKey:
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.id == key_id,
                                                        ~t.api_keys.c.revoked)).first()
            if row is None:
                raise NotFound(f"API key {key_id} not found")
            conn.execute(update(t.api_keys).where(t.api_keys.c.id == key_id).values(revoked=True))
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.id == key_id)).one()
        return api_key_from_row(row)

    def authenticate(self, secret: str) -> ApiKey | None:
        if not secret or len(secret) > 512:
            return None
        digest = _digest(secret)
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.api_keys).where(t.api_keys.c.secret_hash == digest,
                                                        ~t.api_keys.c.revoked)).first()
            if row is None or not hmac.compare_digest(row.secret_hash, digest):
                return None
        try:
            with self.ctx.tx() as conn:
                conn.execute(update(t.api_keys).where(t.api_keys.c.id == row.id)
                             .values(last_used_at=self.ctx.clock()))
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            # A full disk must not lock every API client out (reads still work).
            logger.warning("could not record the use of API key %s: %s", row.id, exc)
        return api_key_from_row(row)
