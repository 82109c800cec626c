"""A project's IP allow list (``settings.allowed_ips``) on every door of a real Argon: the
Postgres wire protocol, ``/sql`` and the WebSocket refuse 127.0.0.1 with Neon's text when
the list does not name it, accept it when it does, and ``protected_branches_only`` binds
protected branches only (issue 8.8).  Bad entries are refused by the API with a 400."""

from __future__ import annotations

import struct
from typing import Any

import httpx
import psycopg
import pytest
from websockets.sync.client import connect as ws_connect

from argon.proxy import pq
from tests.fixtures.argon_env import ArgonEnv
from tests.integration.core.helpers import new_project

NEON_TEXT = ("This IP address 127.0.0.1 is not allowed to connect to this endpoint. "
             "Please add it to the allowed list in the Neon console. "
             "Make sure to check for IPv4 or IPv6 addresses.")


class Project:
    def __init__(self, env: ArgonEnv, name: str, **project: Any) -> None:
        created = new_project(env, name, **project)
        self.env = env
        self.id: str = created["project"]["id"]
        self.branch: str = created["branch"]["id"]
        self.endpoint: str = created["endpoints"][0]["id"]
        self.uri: str = created["connection_uris"][0]["connection_uri"]
        self.password: str = psycopg.conninfo.conninfo_to_dict(self.uri)["password"]

    def allow(self, allowed_ips: dict[str, Any]) -> httpx.Response:
        return self.env.api("PATCH", f"/projects/{self.id}",
                            json={"project": {"settings": {"allowed_ips": allowed_ips}}})

    # -- the three doors: each returns "ok" or the error text the client saw -------------

    def wire(self) -> str:
        try:
            with psycopg.connect(self.uri, autocommit=True, connect_timeout=60) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
            return "ok"
        except psycopg.OperationalError as e:
            return str(e)

    def sql(self) -> str:
        r = httpx.post(f"http://127.0.0.1:{self.env.http_port}/sql",
                       json={"query": "SELECT 1 AS one"}, timeout=60,
                       headers={"Neon-Connection-String": self.uri})
        if r.status_code == 200:
            assert r.json()["rows"] == [{"one": 1}]
            return "ok"
        assert r.status_code == 400, r.text
        return str(r.json()["message"])

    def websocket(self) -> str:
        with ws_connect(f"ws://127.0.0.1:{self.env.http_port}/v2") as ws:
            ws.send(pq.startup_message({"user": "neondb_owner", "database": "neondb"})
                    + pq.message(b"p", f"endpoint={self.endpoint};{self.password}".encode()
                                 + b"\0")
                    + pq.message(b"Q", b"SELECT 6 * 7\0"))
            buf = b""
            while True:
                messages = _messages(buf)
                kinds = [k for k, _ in messages]
                if b"E" in kinds:
                    return _error_text(dict(messages)[b"E"])
                if kinds.count(b"Z") >= 2:
                    return "ok"
                buf += ws.recv(timeout=60)  # type: ignore[operator]

    def doors(self) -> dict[str, str]:
        return {"wire": self.wire(), "sql": self.sql(), "websocket": self.websocket()}


def _messages(buf: bytes) -> list[tuple[bytes, bytes]]:
    out, i = [], 0
    while i + 5 <= len(buf):
        kind, length = struct.unpack("!ci", buf[i:i + 5])
        if i + 1 + length > len(buf):
            break
        out.append((kind, buf[i + 5:i + 1 + length]))
        i += 1 + length
    return out


def _error_text(body: bytes) -> str:
    fields = {f[:1]: f[1:].decode() for f in body.split(b"\0") if f}
    return fields.get(b"M", "")


def _refused_everywhere(doors: dict[str, str]) -> bool:
    return all(NEON_TEXT in text for text in doors.values())


@pytest.fixture(scope="module")
def project(argon_env: ArgonEnv) -> Project:
    return Project(argon_env, "ip-allow",
                   settings={"allowed_ips": {"ips": ["10.0.0.0/8"]}})


def test_refused_on_every_door_with_neons_text(project: Project) -> None:
    doors = project.doors()
    assert _refused_everywhere(doors), doors
    listed = project.env.api("GET", f"/projects/{project.id}").json()["project"]
    assert listed["settings"]["allowed_ips"] == {"ips": ["10.0.0.0/8"]}


@pytest.mark.parametrize("entries", [["127.0.0.1/32"], ["127.0.0.1"],
                                     ["192.168.0.0/16", "127.0.0.0-127.0.0.9"]],
                         ids=["cidr", "single", "range"])
def test_accepted_when_the_list_names_the_client(project: Project,
                                                 entries: list[str]) -> None:
    r = project.allow({"ips": entries})
    assert r.status_code == 200, r.text
    # the refusal before was cached by the proxy: an update must take effect at once
    assert project.doors() == {"wire": "ok", "sql": "ok", "websocket": "ok"}
    r = project.allow({"ips": ["10.0.0.0/8"]})
    assert r.status_code == 200, r.text
    assert _refused_everywhere(project.doors())


def test_empty_list_allows_everyone(project: Project) -> None:
    assert project.allow({"ips": []}).status_code == 200
    assert project.doors() == {"wire": "ok", "sql": "ok", "websocket": "ok"}
    assert project.allow({"ips": ["10.0.0.0/8"]}).status_code == 200


def test_protected_branches_only(argon_env: ArgonEnv) -> None:
    p = Project(argon_env, "ip-allow-protected", settings={"allowed_ips": {
        "ips": ["10.0.0.0/8"], "protected_branches_only": True}})
    # the default branch is not protected: the list does not bind it
    assert p.doors() == {"wire": "ok", "sql": "ok", "websocket": "ok"}
    r = argon_env.api("PATCH", f"/projects/{p.id}/branches/{p.branch}",
                      json={"branch": {"protected": True}})
    assert r.status_code == 200, r.text
    assert _refused_everywhere(p.doors())
    r = argon_env.api("PATCH", f"/projects/{p.id}/branches/{p.branch}",
                      json={"branch": {"protected": False}})
    assert r.status_code == 200, r.text
    assert p.wire() == "ok"


@pytest.mark.parametrize("allowed_ips, named", [
    ({"ips": ["10.0.0.0/33"]}, "'10.0.0.0/33'"),
    ({"ips": ["127.0.0.1", "300.1.2.3"]}, "'300.1.2.3'"),
    ({"ips": ["10.0.0.9-10.0.0"]}, "'10.0.0.9-10.0.0'"),
    ({"ips": ["localhost"]}, "'localhost'"),
    ({"ips": [5]}, "5"),
    ({"ips": "10.0.0.1"}, "must be an array"),
    ({"ips": [], "protected_branches_only": "yes"}, "protected_branches_only"),
    ({"ips": [], "everyone": True}, "'everyone'"),
], ids=["cidr-33", "octet", "half-range", "name", "number", "not-array", "flag", "field"])
def test_bad_entries_are_400(argon_env: ArgonEnv, project: Project,
                             allowed_ips: dict[str, Any], named: str) -> None:
    r = project.allow(allowed_ips)
    assert r.status_code == 400, r.text
    assert named in r.json()["message"]
    r = argon_env.api("POST", "/projects", json={"project": {
        "name": "ip-allow-bad", "settings": {"allowed_ips": allowed_ips}}})
    assert r.status_code == 400, r.text
    assert named in r.json()["message"]
    # nothing was stored or made
    listed = argon_env.api("GET", f"/projects/{project.id}").json()["project"]
    assert listed["settings"]["allowed_ips"] == {"ips": ["10.0.0.0/8"]}
    names = [p["name"] for p in argon_env.api("GET", "/projects").json()["projects"]]
    assert "ip-allow-bad" not in names
