"""OAuth 2.1 grants for neonctl and MCP clients: registered clients, authorization codes
and tokens that stand for an API key.

A user approves a client by entering an API key on the consent page; every token issued
under that approval acts as that key (same reach), is stored only as a SHA-256 digest, and
dies with the key.  Access tokens live an hour, refresh tokens 30 days and rotate on use
(the old refresh token and its access tokens are revoked).  Codes are single-use, kept in
memory for five minutes (a restart between approval and exchange means signing in again).
The protocol itself (PKCE checks, metadata, redirects) is the MCP SDK's authorization
server (``argon.api.oauth``); this module only keeps the state.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from argon.control.context import ControlContext
from argon.control.models import ApiKey
from argon.control.rows import api_key_from_row
from argon.meta import tables as t

ACCESS_TTL = timedelta(hours=1)
REFRESH_TTL = timedelta(days=30)
CODE_TTL_S = 300
TOKEN_PREFIX = "argon_oat_"      # tell tokens from API keys in logs
REFRESH_PREFIX = "argon_ort_"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class PendingCode:
    code: str
    client_id: str
    api_key_id: int
    scopes: list[str]
    code_challenge: str
    redirect_uri: str
    redirect_uri_provided_explicitly: bool
    resource: str | None
    expires_at: float


@dataclass(frozen=True)
class Grant:
    """What a token carries: its client, key and scopes."""
    token: str
    kind: str
    grant_id: str
    client_id: str
    api_key_id: int
    scopes: list[str]
    expires_at: int | None


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    scopes: list[str]


class OAuthService:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self._codes: dict[str, PendingCode] = {}
        self._lock = threading.Lock()

    # -- clients ---------------------------------------------------------------------------

    def save_client(self, client_id: str, info: dict[str, Any]) -> None:
        with self.ctx.tx() as conn:
            conn.execute(t.oauth_clients.insert().values(client_id=client_id, info=info,
                                                         created_at=self.ctx.clock()))

    def client(self, client_id: str) -> dict[str, Any] | None:
        with self.ctx.tx() as conn:
            info = conn.execute(select(t.oauth_clients.c.info).where(
                t.oauth_clients.c.client_id == client_id)).scalar()
        return dict(info) if info is not None else None

    # -- codes -----------------------------------------------------------------------------

    def issue_code(self, *, client_id: str, api_key_id: int, scopes: list[str],
                   code_challenge: str, redirect_uri: str, explicit: bool,
                   resource: str | None) -> PendingCode:
        now = time.time()
        code = PendingCode(secrets.token_urlsafe(32), client_id, api_key_id, scopes,
                           code_challenge, redirect_uri, explicit, resource, now + CODE_TTL_S)
        with self._lock:
            for old in [c for c, p in self._codes.items() if p.expires_at < now]:
                del self._codes[old]
            self._codes[code.code] = code
        return code

    def code(self, client_id: str, code: str) -> PendingCode | None:
        with self._lock:
            pending = self._codes.get(code)
        if pending is None or pending.client_id != client_id or pending.expires_at < time.time():
            return None
        return pending

    def use_code(self, code: PendingCode) -> IssuedTokens:
        with self._lock:
            if self._codes.pop(code.code, None) is None:   # single use
                raise ValueError("authorization code already used")
        return self._issue(code.client_id, code.api_key_id, code.scopes)

    # -- tokens ----------------------------------------------------------------------------

    def _issue(self, client_id: str, api_key_id: int, scopes: list[str]) -> IssuedTokens:
        access = TOKEN_PREFIX + secrets.token_urlsafe(32)
        refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
        now, grant = self.ctx.clock(), str(uuid.uuid4())
        with self.ctx.tx() as conn:
            for token, kind, ttl in ((access, "access", ACCESS_TTL),
                                     (refresh, "refresh", REFRESH_TTL)):
                conn.execute(t.oauth_tokens.insert().values(
                    token_hash=_digest(token), kind=kind, grant_id=grant, client_id=client_id,
                    api_key_id=api_key_id, scopes=" ".join(scopes), expires_at=now + ttl,
                    revoked=False, created_at=now))
        return IssuedTokens(access, refresh, int(ACCESS_TTL.total_seconds()), scopes)

    def grant(self, token: str, kind: str) -> Grant | None:
        """A live token of that kind (not revoked, not expired, its API key not revoked)."""
        if not token or len(token) > 512:
            return None
        with self.ctx.tx() as conn:
            row = conn.execute(
                select(t.oauth_tokens).join(t.api_keys,
                                            t.api_keys.c.id == t.oauth_tokens.c.api_key_id)
                .where(t.oauth_tokens.c.token_hash == _digest(token),
                       t.oauth_tokens.c.kind == kind, ~t.oauth_tokens.c.revoked,
                       ~t.api_keys.c.revoked)).first()
        if row is None or (row.expires_at is not None and row.expires_at <= self.ctx.clock()):
            return None
        return Grant(token, kind, row.grant_id, row.client_id, row.api_key_id,
                     row.scopes.split(), int(row.expires_at.timestamp()) if row.expires_at
                     else None)

    def refresh(self, old: Grant, scopes: list[str] | None) -> IssuedTokens:
        self.revoke_grant(old.grant_id)
        return self._issue(old.client_id, old.api_key_id, scopes or old.scopes)

    def revoke_grant(self, grant_id: str) -> None:
        with self.ctx.tx() as conn:
            conn.execute(update(t.oauth_tokens).where(t.oauth_tokens.c.grant_id == grant_id)
                         .values(revoked=True))

    def authenticate(self, token: str) -> ApiKey | None:
        """The API key an access token stands for (the API and /mcp accept both)."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        grant = self.grant(token, "access")
        if grant is None:
            return None
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.api_keys).where(
                t.api_keys.c.id == grant.api_key_id)).first()
        return api_key_from_row(row) if row is not None else None


def oauth_of(services: Any) -> OAuthService:
    """The one OAuthService of a services container (codes are in its memory)."""
    svc = getattr(services, "_oauth", None)
    if svc is None:
        svc = OAuthService(services.ctx)
        services._oauth = svc
    return svc


def authenticate_bearer(services: Any, token: str, addr: str | None = None) -> ApiKey | None:
    """An API key, or an OAuth access token standing for one (with that key's scope)."""
    key = services.api_keys.authenticate(token, addr)
    if key is None and token.startswith(TOKEN_PREFIX):
        key = oauth_of(services).authenticate(token)
    return key  # type: ignore[no-any-return]


def read_only_grant(services: Any, token: str) -> bool:
    """An OAuth access token whose grant lacks the ``write`` scope (API keys: never)."""
    if not token.startswith(TOKEN_PREFIX):
        return False
    grant = oauth_of(services).grant(token, "access")
    return grant is not None and "write" not in grant.scopes
