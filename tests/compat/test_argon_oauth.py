"""OAuth 2.1 sign-in on Argon's API port: discovery, dynamic client registration,
authorization code + PKCE with the consent page (the user enters an API key), tokens that
act as that key on the API and on ``/mcp``, refresh rotation and revocation; then the real
``neonctl auth`` against it and the MCP SDK's own OAuth client."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.compat.conftest import COMPAT_DIR, need_node
from tests.fixtures.argon_env import ArgonEnv, running_env

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def env() -> Iterator[ArgonEnv]:
    with running_env("oauth") as e:
        yield e


def base(env: ArgonEnv) -> str:
    return f"http://127.0.0.1:{env.api_port}"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def approve(auth_url: str, api_key: str) -> httpx.Response:
    """What a person does in the browser: open the sign-in page, enter the key, approve.
    Returns the redirect to the client's callback (not followed)."""
    with httpx.Client(follow_redirects=False, timeout=30) as http:
        r = http.get(auth_url)
        assert r.status_code == 302, r.text
        consent = r.headers["location"]
        page = http.get(consent)
        assert page.status_code == 200 and "Sign in to Argon" in page.text
        rid = re.search(r'name="request" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        wrong = http.post(consent.split("?")[0], data={"request": rid, "api_key": "napi_bad",
                                                        "action": "approve"})
        assert wrong.status_code == 401 and "not valid" in wrong.text
        done = http.post(consent.split("?")[0], data={"request": rid, "api_key": api_key,
                                                       "action": "approve"})
        assert done.status_code == 302, done.text
        return done


def test_code_and_pkce_flow_tokens_act_as_the_key_then_refresh_and_revoke(
        env: ArgonEnv) -> None:
    meta = httpx.get(base(env) + "/.well-known/oauth-authorization-server").json()
    oidc = httpx.get(base(env) + "/.well-known/openid-configuration").json()
    assert meta["authorization_endpoint"] == oidc["authorization_endpoint"]
    assert "S256" in meta["code_challenge_methods_supported"]
    reg = httpx.post(meta["registration_endpoint"], json={
        "client_name": "test agent", "redirect_uris": ["http://127.0.0.1:9/cb"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"]})
    assert reg.status_code == 201, reg.text
    client_id = reg.json()["client_id"]
    verifier, challenge = pkce()
    auth = httpx.URL(meta["authorization_endpoint"], params={
        "response_type": "code", "client_id": client_id, "redirect_uri": "http://127.0.0.1:9/cb",
        "code_challenge": challenge, "code_challenge_method": "S256", "state": "s1",
        "scope": "read write"})
    back = urlparse(approve(str(auth), env.api_key).headers["location"])
    q = parse_qs(back.query)
    assert back.netloc == "127.0.0.1:9" and q["state"] == ["s1"]
    token_form = {"grant_type": "authorization_code", "code": q["code"][0],
                  "redirect_uri": "http://127.0.0.1:9/cb", "client_id": client_id}
    bad = httpx.post(meta["token_endpoint"], data={**token_form, "code_verifier": "x" * 50})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    tok = httpx.post(meta["token_endpoint"], data={**token_form, "code_verifier": verifier})
    assert tok.status_code == 200, tok.text
    tokens = tok.json()
    again = httpx.post(meta["token_endpoint"], data={**token_form, "code_verifier": verifier})
    assert again.status_code == 400   # a code is used once

    def projects(token: str) -> int:
        return httpx.get(env.api_url + "/projects",
                         headers={"Authorization": f"Bearer {token}"}).status_code

    assert projects(tokens["access_token"]) == 200
    mcp = httpx.post(base(env) + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                     headers={"Authorization": f"Bearer {tokens['access_token']}",
                              "Accept": "application/json, text/event-stream"})
    assert mcp.status_code == 200, mcp.text
    unauth = httpx.post(base(env) + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert 'resource_metadata="' in unauth.headers["www-authenticate"]
    assert httpx.get(base(env) + "/.well-known/oauth-protected-resource/mcp").json()[
        "authorization_servers"] == [meta["issuer"]]

    refreshed = httpx.post(meta["token_endpoint"], data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": client_id}).json()
    assert projects(refreshed["access_token"]) == 200
    assert projects(tokens["access_token"]) == 401          # rotated: the old pair is dead
    r = httpx.post(meta["revocation_endpoint"], data={
        "token": refreshed["refresh_token"], "client_id": client_id})
    assert r.status_code == 200, r.text
    assert projects(refreshed["access_token"]) == 401
    stored = subprocess.run(["sqlite3", str(env.home / "argon.db"),
                             "SELECT token_hash FROM oauth_tokens"], capture_output=True,
                            text=True)
    if stored.returncode == 0:   # only digests are stored
        assert tokens["access_token"] not in stored.stdout
        assert hashlib.sha256(tokens["access_token"].encode()).hexdigest() in stored.stdout


def sign_in(env: ArgonEnv, scope: str) -> dict[str, Any]:
    meta = httpx.get(base(env) + "/.well-known/oauth-authorization-server").json()
    client_id = httpx.post(meta["registration_endpoint"], json={
        "redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none",
        "scope": scope}).json()["client_id"]
    verifier, challenge = pkce()
    auth = httpx.URL(meta["authorization_endpoint"], params={
        "response_type": "code", "client_id": client_id, "redirect_uri": "http://127.0.0.1:9/cb",
        "code_challenge": challenge, "code_challenge_method": "S256", "scope": scope})
    code = parse_qs(urlparse(approve(str(auth), env.api_key).headers["location"]).query)
    return httpx.post(meta["token_endpoint"], data={
        "grant_type": "authorization_code", "code": code["code"][0], "client_id": client_id,
        "redirect_uri": "http://127.0.0.1:9/cb", "code_verifier": verifier}).json()


def test_a_token_without_the_write_scope_gets_the_read_only_tools(env: ArgonEnv) -> None:
    def tools(token: str, extra: dict[str, str]) -> set[str]:
        r = httpx.post(base(env) + "/mcp", json={"jsonrpc": "2.0", "id": 1,
                                                 "method": "tools/list"},
                       headers={"Authorization": f"Bearer {token}", **extra,
                                "Accept": "application/json, text/event-stream"})
        assert r.status_code == 200, r.text
        return {t["name"] for t in r.json()["result"]["tools"]}

    read = sign_in(env, "read")["access_token"]
    write = sign_in(env, "read write")["access_token"]
    assert "create_branch" not in tools(read, {"x-read-only": "false"})
    assert "list_projects" in tools(read, {})
    assert "create_branch" in tools(write, {})
    assert "create_branch" in tools(env.api_key, {})


def test_denied_consent_redirects_with_access_denied(env: ArgonEnv) -> None:
    meta = httpx.get(base(env) + "/.well-known/oauth-authorization-server").json()
    client_id = httpx.post(meta["registration_endpoint"], json={
        "redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none"}
    ).json()["client_id"]
    _v, challenge = pkce()
    with httpx.Client(follow_redirects=False) as http:
        consent = http.get(meta["authorization_endpoint"], params={
            "response_type": "code", "client_id": client_id, "code_challenge": challenge,
            "redirect_uri": "http://127.0.0.1:9/cb", "code_challenge_method": "S256",
            "state": "z"}).headers["location"]
        rid = parse_qs(urlparse(consent).query)["request"][0]
        r = http.post(consent.split("?")[0], data={"request": rid, "action": "deny"})
    q = parse_qs(urlparse(r.headers["location"]).query)
    assert q["error"] == ["access_denied"] and q["state"] == ["z"]


def test_neonctl_auth_signs_in_and_later_commands_use_the_token(env: ArgonEnv,
                                                                 tmp_path: Path) -> None:
    need_node()
    neonctl = COMPAT_DIR / "node_modules" / ".bin" / "neonctl"
    if not neonctl.exists():
        pytest.skip("neonctl is not installed in tests/compat/node_modules")
    config = tmp_path / "neonctl"
    run_env = {**os.environ, "NEON_OAUTH_HOST": base(env), "NEON_API_HOST": env.api_url,
               "BROWSER": "/bin/true", "NO_COLOR": "1", "CI": "", "NEON_API_KEY": ""}
    run_env.pop("NEON_API_KEY")
    proc = subprocess.Popen([str(neonctl), "auth", "--config-dir", str(config),
                             "--no-analytics"], env=run_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    url: dict[str, str] = {}
    got = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r"Auth Url: (\S+)", line)
            if m:
                url["auth"] = m.group(1)
                got.set()
        got.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert got.wait(60) and "auth" in url, "".join(lines)
        callback = approve(url["auth"], env.api_key).headers["location"]
        assert callback.startswith("http://127.0.0.1:")
        page = httpx.get(callback, timeout=30)       # neonctl's own callback server
        assert page.status_code == 200
        assert proc.wait(60) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    creds = json.loads((config / "credentials.json").read_text())
    assert creds["access_token"].startswith("argon_oat_")
    out = subprocess.run([str(neonctl), "projects", "list", "--config-dir", str(config),
                          "--output", "json", "--no-analytics"], env=run_env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    listed: Any = json.loads(out.stdout)
    projects = listed["projects"] if isinstance(listed, dict) else listed
    assert any(p["name"] == "default" for p in projects)


def test_the_mcp_sdk_client_signs_in_by_oauth_and_lists_projects(env: ArgonEnv) -> None:
    import anyio
    import httpx2
    from mcp.client.auth import OAuthClientProvider, TokenStorage
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.auth import (AuthorizationCodeResult, OAuthClientInformationFull,
                                 OAuthClientMetadata, OAuthToken)

    class Memory(TokenStorage):
        tokens: OAuthToken | None = None
        client: OAuthClientInformationFull | None = None

        async def get_tokens(self) -> OAuthToken | None:
            return self.tokens

        async def set_tokens(self, tokens: OAuthToken) -> None:
            self.tokens = tokens

        async def get_client_info(self) -> OAuthClientInformationFull | None:
            return self.client

        async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
            self.client = client_info

    redirected: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:   # the "browser": approve with the key
        location = await anyio.to_thread.run_sync(approve, url, env.api_key)
        redirected["location"] = location.headers["location"]

    async def callback_handler() -> AuthorizationCodeResult:
        q = parse_qs(urlparse(redirected["location"]).query)
        return AuthorizationCodeResult(code=q["code"][0], state=q.get("state", [None])[0])

    storage = Memory()
    auth = OAuthClientProvider(
        server_url=base(env) + "/mcp",
        client_metadata=OAuthClientMetadata(client_name="sdk agent",
                                            redirect_uris=["http://127.0.0.1:9/callback"]),
        storage=storage, redirect_handler=redirect_handler, callback_handler=callback_handler)

    async def main() -> str:
        async with httpx2.AsyncClient(auth=auth, timeout=120) as http:
            async with streamable_http_client(base(env) + "/mcp", http_client=http) as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    res = await session.call_tool("list_projects", {"params": {}})
                    assert not res.is_error
                    return "\n".join(c.text for c in res.content if hasattr(c, "text"))

    listed = json.loads(anyio.run(main))
    assert any(p["name"] == "default" for p in listed["projects"])
    assert storage.tokens is not None and storage.tokens.access_token.startswith("argon_oat_")
