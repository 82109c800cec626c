"""The compute seam: control connects where its provider says, never where it guesses.

A fake provider whose computes "listen" on TCP (as pods would) runs under the real
``EndpointRuntime`` and the proxy backend on a real (SQLite) metadata database: no
Postgres, milliseconds.  Were control to derive a socket directory from the endpoint id
(as it did before the seam), the addresses below would be unix paths under the home.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from argon.compute import (ComputeAddress, ComputeProcess, ComputeProvider, ComputeSpec,
                           ComputeState, HostLayout, PoolerProvider, PoolerSpec)
from argon.control.context import ControlContext
from argon.control.operations import OperationLog
from argon.control.runtime import EndpointRuntime
from argon.control.secretbox import SecretBox
from argon.meta import tables as t
from argon.meta.db import open_database
from argon.pg import OsUser, PgInstall
from argon.settings import Settings

INSTALL = PgInstall(18, "18.6", Path("/nonexistent/pg18/bin"), "embedded")
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeComputes:
    """A provider whose computes run elsewhere: 10.0.0.<n>:5432."""

    start_timeout: float = 1.0
    running: dict[str, ComputeAddress] = field(default_factory=dict)
    specs: list[ComputeSpec] = field(default_factory=list)

    def reserve_address(self, spec: ComputeSpec) -> ComputeSpec:
        return spec

    def start(self, spec: ComputeSpec, ready: object = None) -> ComputeAddress:
        self.specs.append(spec)
        address = self.running.setdefault(
            spec.endpoint_id, ComputeAddress(f"10.0.0.{len(self.running) + 1}", 5432))
        return address

    def stop(self, spec: ComputeSpec, mode: str = "fast") -> None:
        self.running.pop(spec.endpoint_id, None)

    def state(self, spec: ComputeSpec) -> ComputeState:
        return ComputeState.ACTIVE if spec.endpoint_id in self.running else ComputeState.IDLE

    def pid(self, spec: ComputeSpec) -> int | None:
        return 1 if spec.endpoint_id in self.running else None

    def process(self, spec: ComputeSpec) -> ComputeProcess | None:
        address = self.running.get(spec.endpoint_id)
        return None if address is None else ComputeProcess(1, NOW, address)

    def address(self, spec: ComputeSpec) -> ComputeAddress | None:
        return self.running.get(spec.endpoint_id)

    def expected_address(self, spec: ComputeSpec) -> ComputeAddress | None:
        return self.running.get(spec.endpoint_id)

    def connect(self, spec: ComputeSpec, dbname: str = "postgres", user: str | None = None,
                autocommit: bool = True) -> psycopg.Connection:
        raise psycopg.OperationalError("the fake runs no Postgres")

    def client_sessions(self, spec: ComputeSpec) -> int:
        return 0


@dataclass
class FakePoolers:
    running: dict[str, PoolerSpec] = field(default_factory=dict)

    def start(self, spec: PoolerSpec) -> ComputeAddress:
        self.running[spec.endpoint_id] = spec
        return ComputeAddress(f"pooler.{spec.upstream.host}", 6432)

    def stop(self, spec: PoolerSpec) -> None:
        self.running.pop(spec.endpoint_id, None)

    def pid(self, spec: PoolerSpec) -> int | None:
        return 2 if spec.endpoint_id in self.running else None

    def address(self, spec: PoolerSpec) -> ComputeAddress | None:
        pooled = self.running.get(spec.endpoint_id)
        return None if pooled is None else ComputeAddress(f"pooler.{pooled.upstream.host}", 6432)


class FakeStorage:
    """Only what a primary's start asks of storage."""

    def __init__(self) -> None:
        self.recovered: list[str] = []

    def replica_store(self) -> object:
        return object()

    def recovery_finished(self, timeline_id: str) -> None:
        self.recovered.append(timeline_id)


def test_the_fakes_are_providers() -> None:
    computes: ComputeProvider = FakeComputes()
    poolers: PoolerProvider = FakePoolers()
    assert computes.state(ComputeSpec("ep-x", "tl", INSTALL)) is ComputeState.IDLE
    assert poolers.address(PoolerSpec("ep-x", ComputeAddress("h", 1))) is None


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[EndpointRuntime]:
    (tmp_path / "secrets").mkdir()
    engine = open_database(f"sqlite:///{tmp_path / 'meta.db'}")
    ctx = ControlContext(settings=Settings(home=tmp_path), engine=engine,
                         storage=FakeStorage(),  # type: ignore[arg-type]
                         computes=FakeComputes(), poolers=FakePoolers(),
                         owner=OsUser("me", os.getuid(), os.getgid()),
                         secrets=SecretBox(tmp_path / "secrets" / "fernet.key"))
    with ctx.tx() as conn:
        conn.execute(t.projects.insert().values(
            id="p-1", name="p", region_id="local", pg_version=18,
            history_retention_seconds=3600, default_endpoint_settings={}, settings={},
            created_at=NOW, updated_at=NOW))
        conn.execute(t.branches.insert().values(
            id="br-1", project_id="p-1", timeline_id="tl-main", name="main", state="ready",
            created_at=NOW, updated_at=NOW))
        conn.execute(t.endpoints.insert().values(
            id="ep-1", project_id="p-1", branch_id="br-1", type="read_write", state="idle",
            min_cu=0.25, max_cu=0.25, suspend_timeout_seconds=300, pg_settings={},
            created_at=NOW, updated_at=NOW))
    rt = EndpointRuntime(ctx, OperationLog(ctx))
    rt.install_for = lambda _version: INSTALL  # type: ignore[method-assign]
    yield rt
    engine.dispose()


def test_the_spec_names_the_timeline_not_a_directory(runtime: EndpointRuntime) -> None:
    spec = runtime.spec("ep-1")
    assert (spec.timeline_id, spec.copy) == ("tl-main", None)
    assert not any(isinstance(v, Path) for v in vars(spec).values())


def test_a_wake_answers_the_address_the_provider_returned(runtime: EndpointRuntime) -> None:
    computes = runtime.ctx.computes
    assert runtime.running("ep-1") is None
    running = runtime.ensure_running("ep-1")
    assert running.address == ComputeAddress("10.0.0.1", 5432)
    assert not running.address.is_unix
    assert runtime.running("ep-1") == running                    # read back from the provider
    assert [s.timeline_id for s in computes.specs] == ["tl-main"]  # type: ignore[attr-defined]
    assert runtime.ctx.storage.recovered == ["tl-main"]  # type: ignore[attr-defined]
    with runtime.ctx.tx() as conn:
        row = conn.execute(select(t.endpoints.c.state, t.endpoints.c.compute_port)
                           .where(t.endpoints.c.id == "ep-1")).one()
    assert tuple(row) == ("active", 5432)
    # a running compute is answered as it is: no second start
    assert runtime.ensure_running("ep-1") == running
    assert len(computes.specs) == 1  # type: ignore[attr-defined]


def test_a_pooled_wake_points_the_pooler_at_the_provider_address(
        runtime: EndpointRuntime) -> None:
    runtime.ensure_running("ep-1")
    pooled = runtime.ensure_running("ep-1", pooled=True)
    assert pooled.address == ComputeAddress("pooler.10.0.0.1", 6432)
    spec = runtime.ctx.poolers.running["ep-1"]  # type: ignore[union-attr]
    assert spec.upstream == ComputeAddress("10.0.0.1", 5432)
    assert spec.admin_password == runtime.spec("ep-1").admin_password != ""


def test_suspend_stops_through_the_provider(runtime: EndpointRuntime) -> None:
    runtime.ensure_running("ep-1", pooled=True)
    assert runtime.suspend("ep-1") is True
    assert runtime.running("ep-1") is None
    assert runtime.ctx.poolers.running == {}  # type: ignore[union-attr]


def test_the_proxy_is_routed_to_the_provider_address(runtime: EndpointRuntime) -> None:
    from argon.control.proxy_backend import ControlProxyBackend

    @dataclass
    class JustRuntime:   # the proxy backend reads only these of Services
        runtime: EndpointRuntime
        ctx: ControlContext

    backend = ControlProxyBackend(JustRuntime(runtime, runtime.ctx))  # type: ignore[arg-type]
    address = asyncio.run(backend.wake("ep-1", pooled=False))
    assert (address.host, address.port) == ("10.0.0.1", 5432)


def test_the_local_layout_keeps_host_paths_inside_the_compute_room(tmp_path: Path) -> None:
    class Dirs:
        def pgdata(self, timeline_id: str, copy: str | None = None) -> Path:
            return tmp_path / timeline_id / (copy or "pgdata")

    layout = HostLayout(Dirs(), tmp_path)
    spec = ComputeSpec("ep-r", "tl-main", INSTALL)
    assert layout.place(spec).pgdata == tmp_path / "tl-main" / "pgdata"
    assert layout.place(replace(spec, copy="ep-r")).pgdata == tmp_path / "tl-main" / "ep-r"
    assert layout.place(spec).log_path == tmp_path / "logs" / "ep-r.log"
