"""Fixtures for read replicas: one real Argon for the module, a project per test, and
helpers that do what a user does (API calls, connection strings, psql-like sessions)."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fixtures.argon_env import ArgonEnv, running_env, wait_operations


@pytest.fixture(scope="module")
def env() -> Iterator[ArgonEnv]:
    with running_env("replicas") as e:
        yield e


@dataclass
class Project:
    env: ArgonEnv
    id: str
    main: str             # the default branch id
    primary: str          # its read_write endpoint id
    role: str
    database: str

    def api(self, method: str, path: str, **kw: Any) -> Any:
        return self.env.api(method, f"/projects/{self.id}{path}", **kw)

    def settle(self, body: dict[str, Any]) -> None:
        wait_operations(self.env.api, self.id, body.get("operations", []))

    def add_replica(self, branch_id: str | None = None, **fields: Any) -> dict[str, Any]:
        r = self.api("POST", "/endpoints", json={"endpoint": {
            "branch_id": branch_id or self.main, "type": "read_only", **fields}})
        assert r.status_code == 201, r.text
        self.settle(r.json())
        ep = r.json()["endpoint"]
        assert ep["type"] == "read_only"
        return ep  # type: ignore[no-any-return]

    def add_branch(self, name: str, endpoint_type: str = "read_write") -> dict[str, Any]:
        """A child of main with one endpoint; the creation answer."""
        r = self.api("POST", "/branches", json={"branch": {"name": name},
                                                "endpoints": [{"type": endpoint_type}]})
        assert r.status_code == 201, r.text
        self.settle(r.json())
        return r.json()  # type: ignore[no-any-return]

    def endpoint(self, endpoint_id: str) -> dict[str, Any]:
        r = self.api("GET", f"/endpoints/{endpoint_id}")
        assert r.status_code == 200, r.text
        return r.json()["endpoint"]  # type: ignore[no-any-return]

    def uri(self, endpoint_id: str | None = None, pooled: bool = False) -> str:
        params: dict[str, Any] = {"database_name": self.database, "role_name": self.role,
                                  "pooled": pooled}
        if endpoint_id:
            params["endpoint_id"] = endpoint_id
        r = self.api("GET", "/connection_uri", params=params)
        assert r.status_code == 200, r.text
        return r.json()["uri"]  # type: ignore[no-any-return]

    def connect(self, endpoint_id: str | None = None, **kw: Any) -> psycopg.Connection:
        return psycopg.connect(self.uri(endpoint_id), autocommit=True, connect_timeout=60,
                               **kw)

    def action(self, endpoint_id: str, what: str) -> None:
        r = self.api("POST", f"/endpoints/{endpoint_id}/{what}")
        assert r.status_code == 200, r.text
        self.settle(r.json())

    def state(self, endpoint_id: str) -> str:
        return self.endpoint(endpoint_id)["current_state"]  # type: ignore[no-any-return]

    def timeline(self, branch_id: str | None = None) -> Path:
        """The branch's timeline directory (where replicas keep their data)."""
        import sqlite3  # noqa: PLC0415 - only tests peek into the metadata
        with sqlite3.connect(self.env.home / "argon.db") as db:
            (tl,) = db.execute("SELECT timeline_id FROM branches WHERE id = ?",
                               (branch_id or self.main,)).fetchone()
        return self.env.home / "timelines" / tl

    def replica_dir(self, endpoint_id: str, branch_id: str | None = None) -> Path:
        return self.timeline(branch_id) / "replicas" / endpoint_id


@pytest.fixture
def project(env: ArgonEnv) -> Iterator[Project]:
    r = env.api("POST", "/projects", json={"project": {"name": f"rr-{uuid.uuid4().hex[:6]}"}})
    assert r.status_code == 201, r.text
    body = r.json()
    wait_operations(env.api, body["project"]["id"], body["operations"])
    p = Project(env, body["project"]["id"], body["branch"]["id"], body["endpoints"][0]["id"],
                body["roles"][0]["name"], body["databases"][0]["name"])
    yield p
    env.api("DELETE", f"/projects/{p.id}")


def wait_for(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.05,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (psycopg.Error, OSError) as exc:
            last = exc
        time.sleep(every)
    raise AssertionError(f"{what} not reached in {timeout} s (last: {last!r})")


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def kill9(pgdata: Path) -> None:
    os.kill(postmaster_pid(pgdata), signal.SIGKILL)
