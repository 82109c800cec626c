"""Connection strings and the SCRAM password check behind /sql."""

from __future__ import annotations

import asyncio

import pytest

from argon.errors import InvalidInput, NotFound, Unauthorized
from argon.pg.scram import make_verifier
from argon.proxy.serverless.sql_over_http import (
    ConnectionInfo,
    ScramSqlResolver,
    SqlTarget,
    parse_connection_string,
)


def test_parse_full_connection_string() -> None:
    info = parse_connection_string(
        "postgresql://neondb_owner:npg_p%40ss@ep-cool-darkness-123456.us-east-2.aws.neon.tech"
        "/neondb?sslmode=require&channel_binding=require")
    assert info == ConnectionInfo("ep-cool-darkness-123456.us-east-2.aws.neon.tech", None,
                                  "neondb_owner", "npg_p@ss", "neondb", None)


def test_parse_loopback_with_port_and_options() -> None:
    info = parse_connection_string(
        "postgres://u%20x:pw@127.0.0.1:5433/my%20db?options=endpoint%3Dep-x-1")
    assert (info.host, info.port, info.user, info.dbname, info.options) == (
        "127.0.0.1", 5433, "u x", "my db", "endpoint=ep-x-1")


@pytest.mark.parametrize(("conn", "needle"), [
    ("http://u:p@h/db", "incorrect scheme"),
    ("postgresql://u@h/db", "required password"),
    ("postgresql://:p@h/db", "missing username"),
    ("postgresql://u:p@h/", "missing database name"),
    ("postgresql://u:p@h:notaport/db", "invalid connection string"),
    ("not a url", "incorrect scheme"),
])
def test_parse_errors_say_what_is_wrong(conn: str, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        parse_connection_string(conn)


def _resolver(calls: list[str]) -> ScramSqlResolver:
    verifier = str(make_verifier("right", iterations=64))

    async def endpoint_for(host: str | None, port: int | None, options: str | None) -> str:
        label = (host or "").split(".")[0]
        if not label.startswith("ep-"):
            raise NotFound("no endpoint in the host")
        return label

    async def role_secret(endpoint_id: str, role: str) -> str | None:
        calls.append(f"secret {endpoint_id} {role}")
        return verifier if role == "alice" else None

    async def wake(endpoint_id: str) -> tuple[str, int]:
        calls.append(f"wake {endpoint_id}")
        return "/run/sock", 6543

    return ScramSqlResolver(endpoint_for, role_secret, wake)


def test_resolver_checks_the_password_and_wakes() -> None:
    calls: list[str] = []
    resolver = _resolver(calls)
    target = asyncio.run(resolver.resolve("postgresql://alice:right@ep-a-1.local/app"))
    assert target == SqlTarget("/run/sock", 6543, "alice", "app", "ep-a-1", password="right")
    assert "right" not in repr(target)   # the password never reaches a log line
    assert calls == ["secret ep-a-1 alice", "wake ep-a-1"]
    # A remembered password still has to match.
    asyncio.run(resolver.resolve("postgresql://alice:right@ep-a-1.local/app"))
    with pytest.raises(Unauthorized, match="password authentication failed for user 'alice'"):
        asyncio.run(resolver.resolve("postgresql://alice:wrong@ep-a-1.local/app"))


def test_resolver_refuses_unknown_roles_and_endpoints() -> None:
    calls: list[str] = []
    resolver = _resolver(calls)
    with pytest.raises(Unauthorized, match="user 'bob'"):
        asyncio.run(resolver.resolve("postgresql://bob:right@ep-a-1.local/app"))
    with pytest.raises(NotFound):
        asyncio.run(resolver.resolve("postgresql://alice:right@127.0.0.1/app"))
    assert not any(c.startswith("wake") for c in calls)
