"""Crash recovery after kill -9, refused settings, and stop modes."""

from __future__ import annotations

from dataclasses import replace

import os
import signal
import time
from collections.abc import Callable

import pytest

from argon.compute import ComputeManager, ComputeSpec, ComputeStartFailed
from argon.errors import InvalidInput
from tests.fixtures.compute import place


def test_kill9_then_start_keeps_committed_rows(make_compute_spec: Callable[..., ComputeSpec],
                                               compute_manager: ComputeManager) -> None:
    spec = make_compute_spec()
    pid = compute_manager.start_process(spec).pid
    with compute_manager.connect(spec) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10   # SIGKILL is delivered asynchronously
    while compute_manager.pid(spec) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    fresh = ComputeManager(compute_manager.owner, compute_manager.layout)   # Argon restarted too
    assert fresh.pid(spec) is None
    new = fresh.start_process(spec)
    assert new.pid != pid
    with fresh.connect(spec) as conn:
        assert conn.execute("SELECT count(*), max(v) FROM t").fetchone() == (1000, "row 999")
    assert "automatic recovery" in place(spec).log_path.read_text() or \
        "not properly shut down" in place(spec).log_path.read_text()


@pytest.mark.parametrize(("settings", "message"), [
    ({"work_mem": "lots"}, "'work_mem' must be a size"),
    ({"no_such_setting": "1"}, "'no_such_setting' cannot be set per endpoint"),
    ({"listen_addresses": "*"}, "'listen_addresses' cannot be set per endpoint"),
])
def test_bad_setting_is_refused_before_start(settings: dict[str, str], message: str,
                                             make_compute_spec: Callable[..., ComputeSpec],
                                             compute_manager: ComputeManager) -> None:
    # The API refuses these when they are stored; rendering checks again (older rows).
    spec = make_compute_spec(pg_settings=settings)
    with pytest.raises(InvalidInput) as info:
        compute_manager.start_process(spec)
    assert message in info.value.message
    assert compute_manager.pid(spec) is None
    assert not place(spec).log_path.exists()


def test_wrong_major_version_is_refused(make_compute_spec: Callable[..., ComputeSpec],
                                        compute_manager: ComputeManager) -> None:
    spec15 = make_compute_spec(15)
    spec18 = make_compute_spec(18)
    wrong = replace(spec15, install=spec18.install)
    with pytest.raises(InvalidInput, match="PostgreSQL 15"):
        compute_manager.start_process(wrong)


def test_exit_at_start_reports_log_tail(make_compute_spec: Callable[..., ComputeSpec],
                                        compute_manager: ComputeManager) -> None:
    spec = make_compute_spec()
    (place(spec).pgdata / "global" / "pg_control").write_bytes(b"garbage")
    with pytest.raises(ComputeStartFailed) as info:
        compute_manager.start_process(spec)
    assert "exited with code" in str(info.value)
    assert "pg_control" in str(info.value)


@pytest.mark.parametrize("mode", ["smart", "fast", "immediate"])
def test_stop_modes(mode: str, make_compute_spec: Callable[..., ComputeSpec],
                    compute_manager: ComputeManager) -> None:
    spec = make_compute_spec()
    compute_manager.start_process(spec)
    compute_manager.stop(spec, mode)
    assert compute_manager.pid(spec) is None
    assert compute_manager.start_process(spec).pid == compute_manager.pid(spec)


def test_unknown_stop_mode(make_compute_spec: Callable[..., ComputeSpec],
                           compute_manager: ComputeManager) -> None:
    with pytest.raises(InvalidInput, match="smart, fast, immediate"):
        compute_manager.stop(make_compute_spec(), "gentle")
