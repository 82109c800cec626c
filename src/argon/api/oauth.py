"""OAuth 2.1 sign-in on the API port, for ``neonctl auth`` and remote MCP clients.

The protocol is the MCP SDK's authorization server (``mcp.server.auth``: metadata,
``/authorize``, ``/token`` with PKCE, ``/register`` for dynamic client registration,
``/revoke``); this module is its storage provider (``argon.control.oauth``) and the consent
page, where the user approves by entering an Argon API key.  Also served:
``/.well-known/openid-configuration`` (what neonctl's openid-client discovers; no ID token
is issued) and ``/.well-known/oauth-protected-resource`` for ``/mcp``.

neonctl's fixed client id ``neonctl`` is built in (a public client, loopback redirect on
any port, RFC 8252); other clients register themselves.
"""

from __future__ import annotations

import html
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from mcp.server.auth.provider import (AccessToken, AuthorizationCode, AuthorizationParams,
                                      RefreshToken, TokenError)
from mcp.server.auth.routes import build_metadata, create_auth_routes
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions
from mcp.shared.auth import InvalidRedirectUriError, OAuthClientInformationFull, OAuthToken
from pydantic import AnyHttpUrl, AnyUrl
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from argon.control.oauth import OAuthService, oauth_of

NEONCTL_CLIENT_ID = "neonctl"
BASE_SCOPES = ["openid", "offline", "offline_access", "read", "write"]
NEONCTL_SCOPES = BASE_SCOPES + [f"urn:neoncloud:{what}:{verb}"
                                for what in ("projects", "orgs")
                                for verb in ("create", "read", "update", "delete")] + [
                                    "urn:neoncloud:orgs:permission"]
CONSENT_PATH = "/oauth/consent"
CONSENT_TTL_S = 600


class LoopbackClient(OAuthClientInformationFull):
    """A native client redirecting to ``http://127.0.0.1:<any port>/callback``."""

    def validate_redirect_uri(self, redirect_uri: AnyUrl | None) -> AnyUrl:
        if (redirect_uri is not None and redirect_uri.scheme == "http"
                and redirect_uri.host in ("127.0.0.1", "localhost", "[::1]", "::1")
                and (redirect_uri.path or "/") == "/callback"):
            return redirect_uri
        raise InvalidRedirectUriError(f"Redirect URI '{redirect_uri}' is not a loopback "
                                      "/callback address")


NEONCTL_CLIENT = LoopbackClient(
    client_id=NEONCTL_CLIENT_ID, client_name="neonctl", redirect_uris=None,
    token_endpoint_auth_method="none", grant_types=["authorization_code", "refresh_token"],
    response_types=["code"], scope=" ".join(NEONCTL_SCOPES))


class ArgonOAuthProvider:
    """The SDK's ``OAuthAuthorizationServerProvider`` over ``OAuthService``."""

    def __init__(self, oauth: OAuthService, issuer: str) -> None:
        self.oauth, self.issuer = oauth, issuer
        self.pending: dict[str, tuple[OAuthClientInformationFull, AuthorizationParams, float]] = {}

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        if client_id == NEONCTL_CLIENT_ID:
            return NEONCTL_CLIENT
        info = await run_in_threadpool(self.oauth.client, client_id)
        return OAuthClientInformationFull.model_validate(info) if info else None

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        if client_info.client_id == NEONCTL_CLIENT_ID:
            raise ValueError("client id reserved")
        await run_in_threadpool(self.oauth.save_client, client_info.client_id,
                                client_info.model_dump(mode="json", exclude_none=True))

    async def authorize(self, client: OAuthClientInformationFull,
                        params: AuthorizationParams) -> str:
        now = time.time()
        for rid in [r for r, (_c, _p, at) in self.pending.items() if at < now]:
            del self.pending[rid]
        rid = secrets.token_urlsafe(24)
        self.pending[rid] = (client, params, now + CONSENT_TTL_S)
        return f"{self.issuer}{CONSENT_PATH}?{urlencode({'request': rid})}"

    async def load_authorization_code(self, client: OAuthClientInformationFull,
                                      authorization_code: str) -> AuthorizationCode | None:
        code = self.oauth.code(client.client_id, authorization_code)
        if code is None:
            return None
        return AuthorizationCode(
            code=code.code, scopes=code.scopes, expires_at=code.expires_at,
            client_id=code.client_id, code_challenge=code.code_challenge,
            redirect_uri=AnyUrl(code.redirect_uri),
            redirect_uri_provided_explicitly=code.redirect_uri_provided_explicitly,
            resource=code.resource, subject=str(code.api_key_id))

    async def exchange_authorization_code(self, client: OAuthClientInformationFull,
                                          authorization_code: AuthorizationCode) -> OAuthToken:
        code = self.oauth.code(client.client_id, authorization_code.code)
        if code is None:
            raise TokenError("invalid_grant", "authorization code expired or already used")
        issued = await run_in_threadpool(self.oauth.use_code, code)
        return OAuthToken(access_token=issued.access_token, expires_in=issued.expires_in,
                          scope=" ".join(issued.scopes) or None,
                          refresh_token=issued.refresh_token)

    async def load_refresh_token(self, client: OAuthClientInformationFull,
                                 refresh_token: str) -> RefreshToken | None:
        grant = await run_in_threadpool(self.oauth.grant, refresh_token, "refresh")
        if grant is None or grant.client_id != client.client_id:
            return None
        return RefreshToken(token=refresh_token, client_id=grant.client_id, scopes=grant.scopes,
                            expires_at=grant.expires_at, subject=str(grant.api_key_id))

    async def exchange_refresh_token(self, client: OAuthClientInformationFull,
                                     refresh_token: RefreshToken,
                                     scopes: list[str]) -> OAuthToken:
        grant = await run_in_threadpool(self.oauth.grant, refresh_token.token, "refresh")
        if grant is None:
            raise TokenError("invalid_grant", "refresh token expired or revoked")
        issued = await run_in_threadpool(self.oauth.refresh, grant, scopes or None)
        return OAuthToken(access_token=issued.access_token, expires_in=issued.expires_in,
                          scope=" ".join(issued.scopes) or None,
                          refresh_token=issued.refresh_token)

    async def load_access_token(self, token: str) -> AccessToken | None:
        grant = await run_in_threadpool(self.oauth.grant, token, "access")
        if grant is None:
            return None
        return AccessToken(token=token, client_id=grant.client_id, scopes=grant.scopes,
                           expires_at=grant.expires_at, subject=str(grant.api_key_id))

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        kind = "refresh" if isinstance(token, RefreshToken) else "access"
        grant = await run_in_threadpool(self.oauth.grant, token.token, kind)
        if grant is not None:
            await run_in_threadpool(self.oauth.revoke_grant, grant.grant_id)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(title)}</title><style>
body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
input{{width:100%;padding:.5rem;margin:.5rem 0;box-sizing:border-box}}
button{{padding:.5rem 1rem;margin-right:.5rem}} .err{{color:#b00}}</style></head>
<body>{body}</body></html>""", status_code=status, headers={
        "Cache-Control": "no-store", "X-Frame-Options": "DENY",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                   "form-action 'self' http: https:"})


def _consent_form(rid: str, client: OAuthClientInformationFull, params: AuthorizationParams,
                  error: str = "") -> str:
    name = html.escape(client.client_name or client.client_id)
    scopes = html.escape(" ".join(params.scopes or []) or "(default)")
    err = f'<p class="err" data-testid="consent-error">{html.escape(error)}</p>' if error else ""
    return f"""<h1>Sign in to Argon</h1>
<p><b>{name}</b> asks to act on your behalf (scopes: {scopes}); it will reach what the
API key you enter reaches. Redirect: {html.escape(str(params.redirect_uri))}</p>{err}
<form method="post" action="{CONSENT_PATH}">
<input type="hidden" name="request" value="{html.escape(rid)}">
<label>API key <input type="password" name="api_key" autocomplete="off" autofocus
 data-testid="consent-api-key"></label>
<button type="submit" name="action" value="approve" data-testid="consent-approve">Approve</button>
<button type="submit" name="action" value="deny">Deny</button></form>
<p>The bootstrap key is in <code>&lt;home&gt;/secrets/bootstrap_api_key</code>; create others
with <code>argon api-keys create</code>.</p>"""


def _redirect(params: AuthorizationParams, **query: str) -> RedirectResponse:
    if params.state is not None:
        query["state"] = params.state
    uri = str(params.redirect_uri)
    sep = "&" if "?" in uri else "?"
    return RedirectResponse(uri + sep + urlencode(query), status_code=302,
                            headers={"Cache-Control": "no-store"})


def issuer_of(services: Any) -> str:
    """The API's own address (what ``argon start`` prints): the OAuth issuer."""
    s = services.ctx.settings
    host = f"[{s.listen_host}]" if ":" in s.listen_host else s.listen_host
    return f"http://{host}:{s.api_port}"


def mount_oauth(app: Any, services: Any, issuer: str) -> None:
    oauth = oauth_of(services)
    provider = ArgonOAuthProvider(oauth, issuer)
    routes = create_auth_routes(
        provider, AnyHttpUrl(issuer),
        client_registration_options=ClientRegistrationOptions(
            enabled=True, valid_scopes=NEONCTL_SCOPES, default_scopes=BASE_SCOPES),
        revocation_options=RevocationOptions(enabled=True))
    for route in routes:
        if route.path != "/revoke":   # ours below: the SDK's demands a secret of public clients
            app.router.routes.append(route)
    metadata = build_metadata(AnyHttpUrl(issuer), None, ClientRegistrationOptions(
        enabled=True, valid_scopes=NEONCTL_SCOPES), RevocationOptions(enabled=True))
    openid = metadata.model_dump(mode="json", exclude_none=True)
    openid["token_endpoint_auth_methods_supported"] = [
        "none", *openid.get("token_endpoint_auth_methods_supported", [])]
    openid["subject_types_supported"] = ["public"]

    async def openid_configuration(request: Request) -> Response:
        # The same server under OpenID's name (openid-client's default discovery); no ID
        # token is issued, so there is no jwks_uri.
        return JSONResponse(openid, headers={"Cache-Control": "public, max-age=3600"})

    async def protected_resource(request: Request) -> JSONResponse:
        return JSONResponse({"resource": f"{issuer}/mcp",
                             "authorization_servers": [str(metadata.issuer)],
                             "scopes_supported": BASE_SCOPES,
                             "bearer_methods_supported": ["header"]})

    async def consent(request: Request) -> Response:
        if request.method == "GET":
            rid = request.query_params.get("request", "")
            form: dict[str, Any] = {}
        else:
            form = dict(await request.form())
            rid = str(form.get("request", ""))
        entry = provider.pending.get(rid)
        if entry is None or entry[2] < time.time():
            return _page("Sign-in expired", "<h1>This sign-in request expired</h1><p>Start "
                         "the sign-in again from your client.</p>", 400)
        client, params, _at = entry
        if request.method == "GET":
            return _page("Sign in to Argon", _consent_form(rid, client, params))
        if form.get("action") != "approve":
            provider.pending.pop(rid, None)
            return _redirect(params, error="access_denied",
                             error_description="the user denied the request")
        key = await run_in_threadpool(services.api_keys.authenticate,
                                      str(form.get("api_key", "")).strip())
        if key is None:
            return _page("Sign in to Argon", _consent_form(
                rid, client, params, "That API key is not valid (or was revoked)."), 401)
        provider.pending.pop(rid, None)
        code = oauth.issue_code(client_id=client.client_id, api_key_id=key.id,
                                scopes=params.scopes or BASE_SCOPES,
                                code_challenge=params.code_challenge,
                                redirect_uri=str(params.redirect_uri),
                                explicit=params.redirect_uri_provided_explicitly,
                                resource=params.resource)
        return _redirect(params, code=code.code)

    async def revoke(request: Request) -> Response:
        """RFC 7009: 200 whether or not the token was live; the client must be the owner."""
        form = dict(await request.form())
        client = await provider.get_client(str(form.get("client_id", "")))
        secret = client.client_secret if client is not None else None
        if client is None or (secret and not secrets.compare_digest(
                secret, str(form.get("client_secret", "")))):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = str(form.get("token", ""))
        found: AccessToken | RefreshToken | None = (
            await provider.load_access_token(token)
            or await provider.load_refresh_token(client, token))
        if found is not None and found.client_id == client.client_id:
            await provider.revoke_token(found)
        return JSONResponse({}, headers={"Cache-Control": "no-store"})

    app.router.add_route("/revoke", revoke, methods=["POST"], include_in_schema=False)
    app.router.add_route("/.well-known/openid-configuration", openid_configuration,
                         methods=["GET"], include_in_schema=False)
    for path in ("/.well-known/oauth-protected-resource",
                 "/.well-known/oauth-protected-resource/mcp"):
        app.router.add_route(path, protected_resource, methods=["GET"],
                             include_in_schema=False)
    app.router.add_route(CONSENT_PATH, consent, methods=["GET", "POST"],
                         include_in_schema=False)
