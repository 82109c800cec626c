"""The compute modes (primary, replica, static) in the rendered postgresql.conf."""

from __future__ import annotations

from pathlib import Path

import pytest

from argon.compute.config import render_config as _render_config, with_standby_minimums
from argon.compute.placement import Placement
from argon.compute.spec import ComputeMode, ComputeSpec
from argon.pg import choose_install


def _spec(mode: ComputeMode, **kw: object) -> ComputeSpec:
    return ComputeSpec("ep-m", "tl", choose_install(), 5432, mode=mode,
                       **kw)  # type: ignore[arg-type]


def render_config(spec: ComputeSpec) -> str:
    return _render_config(spec, Placement(Path("/data"), Path("/run/s"), Path("/log")))


def _settings(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if " = " in line and not line.startswith(("#", "include")):
            k, _, v = line.partition(" = ")
            out[k] = v.strip("'")
    return out


def test_each_mode_adds_its_own_settings() -> None:
    primary = _settings(render_config(_spec(ComputeMode.PRIMARY)))
    replica = _settings(render_config(_spec(ComputeMode.REPLICA)))
    static = _settings(render_config(_spec(ComputeMode.STATIC)))
    assert "default_transaction_read_only" not in primary
    assert "hot_standby_feedback" not in primary
    assert replica["hot_standby_feedback"] == "on"
    assert static["default_transaction_read_only"] == "on"
    assert not _spec(ComputeMode.PRIMARY).read_only
    assert _spec(ComputeMode.REPLICA).read_only and _spec(ComputeMode.STATIC).read_only


def test_a_replica_gets_at_least_its_primarys_connection_limits() -> None:
    text = render_config(_spec(ComputeMode.REPLICA, standby_minimums={
        "max_connections": 450, "max_worker_processes": 16, "max_locks_per_transaction": 10}))
    got = _settings(text)
    assert got["max_connections"] == "450" and got["max_worker_processes"] == "16"
    assert "max_locks_per_transaction" in got and got["max_locks_per_transaction"] == "10"
    # a primary ignores minimums (only a standby must match its primary)
    primary = _settings(render_config(_spec(ComputeMode.PRIMARY, standby_minimums={
        "max_connections": 450})))
    assert primary["max_connections"] == "112"


@pytest.mark.parametrize(("current", "floor", "want"), [("112", 450, "450"), ("901", 450, "901")])
def test_minimums_only_raise(current: str, floor: int, want: str) -> None:
    assert with_standby_minimums({"max_connections": current},
                                 {"max_connections": floor})["max_connections"] == want
