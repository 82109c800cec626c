"""Routing: one row per form in neon-compat.md, plus the errors."""

from __future__ import annotations

import pytest

from argon.proxy.errors import ErrorKind, ProxyError
from argon.proxy.routing import (
    endpoint_from_address,
    endpoint_from_host,
    no_endpoint_error,
    route,
    split_options,
    split_password_form,
)

D = "argon.test"
BASE = {"user": "u", "database": "d"}


@pytest.mark.parametrize(("params", "sni", "port", "expected"), [
    ({}, f"ep-cool-123.{D}", None, ("ep-cool-123", False)),
    ({}, f"ep-cool-123-pooler.{D}", None, ("ep-cool-123", True)),
    ({}, f"EP-Cool-123.{D}.", None, ("ep-cool-123", False)),
    ({"options": "endpoint=ep-a"}, None, None, ("ep-a", False)),
    ({"options": "project=ep-a"}, None, None, ("ep-a", False)),
    ({"options": "endpoint=ep-a-pooler"}, None, None, ("ep-a", True)),
    ({"options": "endpoint=ep-a"}, f"ep-a.{D}", None, ("ep-a", False)),
    ({}, None, ("ep-port", True), ("ep-port", True)),
    ({}, f"api.{D}", None, (None, False)),
    ({}, "localhost", None, (None, False)),
    ({}, "127.0.0.1", None, (None, False)),
    ({}, "ep-x.other.domain", None, (None, False)),
    ({}, f"a.b.{D}", None, (None, False)),
    ({}, None, None, (None, False)),
])
def test_route_forms(params: dict[str, str], sni: str | None,
                     port: tuple[str, bool] | None, expected: tuple[str | None, bool]) -> None:
    r = route({**BASE, **params}, sni=sni, domain=D, port_endpoint=port)
    assert (r.endpoint_id, r.pooled) == expected
    assert "options" not in r.params


def test_other_options_pass_through() -> None:
    r = route({**BASE, "options": r"-c search_path=a,b endpoint=ep-a --my.x=1 -c x=with\ space"},
              sni=None, domain=D)
    assert r.endpoint_id == "ep-a"
    assert split_options(r.params["options"]) == ["-c", "search_path=a,b", "--my.x=1", "-c",
                                                 "x=with space"]


def test_libpq_only_keys_are_dropped() -> None:
    params = {**BASE, "channel_binding": "require", "sslmode": "require",
              "application_name": "app", "target_session_attrs": "any"}
    r = route(params, sni=f"ep-a.{D}", domain=D)
    assert r.params == {**BASE, "application_name": "app"}


@pytest.mark.parametrize(("params", "sni", "port"), [
    ({"options": "endpoint=ep-b"}, f"ep-a.{D}", None),
    ({"options": "endpoint=ep-b"}, None, ("ep-a", False)),
    ({"options": "endpoint=ep-a endpoint=ep-b"}, None, None),
    ({"options": "endpoint=Bad_Id!"}, None, None),
])
def test_disagreement_and_bad_ids_are_errors(params: dict[str, str], sni: str | None,
                                            port: tuple[str, bool] | None) -> None:
    with pytest.raises(ProxyError) as e:
        route({**BASE, **params}, sni=sni, domain=D, port_endpoint=port)
    assert e.value.kind is ErrorKind.ROUTING


@pytest.mark.parametrize(("password", "expected"), [
    ("endpoint=ep-a;secret", ("ep-a", "secret")),
    ("endpoint=ep-a$sec;ret", ("ep-a", "sec;ret")),
    ("endpoint=ep-a-pooler;x", ("ep-a-pooler", "x")),
    ("plain-password", None),
    ("endpoint=;x", None),
    ("endpoint=ep-a", None),
])
def test_password_form(password: str, expected: tuple[str, str] | None) -> None:
    assert split_password_form(password) == expected


def test_no_endpoint_message_tells_how() -> None:
    msg = no_endpoint_error(D).client_message
    assert f"ep-<id>.{D}" in msg and "options=endpoint%3D" in msg and "endpoint=<endpoint-id>;" in msg


def test_websocket_address_forms() -> None:
    assert endpoint_from_address(f"ep-a.{D}:5432", D) == ("ep-a", False)
    assert endpoint_from_address("ep-b-pooler.example.com", D) == ("ep-b", True)
    assert endpoint_from_address("127.0.0.1:4444", D) is None
    assert endpoint_from_host(f"ep-a.{D}", None) is None
