"""A compute start's metadata: the endpoint's state and the start's operation are
written in one transaction, so a failure (or a crash) between the two writes cannot
leave an endpoint put back to idle beside an operation still "running", or the reverse.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from argon.control.fast_wake import InParallel
from argon.control.runtime import EndpointRuntime
from argon.meta import tables as t
from argon.meta.db import open_database
from tests.unit.control.test_coordinator_activity import add_endpoint, make_runtime


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[EndpointRuntime]:
    rt = make_runtime(tmp_path, open_database(f"sqlite:///{tmp_path / 'm.db'}"))
    add_endpoint(rt)
    with rt.ctx.tx() as conn:   # suspended, as before a wake
        conn.execute(update(t.endpoints).values(state="idle"))
    yield rt
    rt.ctx.locks.close()
    rt.ctx.engine.dispose()


def recorded(rt: EndpointRuntime) -> tuple[str, str]:
    """(the endpoint's state, its start operation's status)."""
    with rt.ctx.tx() as conn:
        state = conn.execute(select(t.endpoints.c.state)).scalar_one()
        status = conn.execute(select(t.operations.c.status)).scalar_one()
    return state, status


def test_a_failed_start_puts_the_state_back_with_its_operation_or_not_at_all(
        runtime: EndpointRuntime) -> None:
    with runtime.ctx.tx() as conn:
        row = conn.execute(select(t.endpoints)).one()
    op_record = InParallel("start", lambda: runtime._begin_start_operation(row))
    op_record.wait()
    assert recorded(runtime) == ("active", "running")

    # the operation's own write fails (e.g. the disk is full): nothing else is written
    with runtime.ctx.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER no_settle BEFORE UPDATE ON operations "
                          "BEGIN SELECT RAISE(ABORT, 'metadata write failed'); END"))
    with pytest.raises(Exception, match="metadata write failed"):
        runtime._fail_start_operation(op_record, row, "Postgres exited with code 1")
    assert recorded(runtime) == ("active", "running")

    with runtime.ctx.engine.begin() as conn:   # the disk has room again
        conn.execute(text("DROP TRIGGER no_settle"))
    runtime._fail_start_operation(op_record, row, "Postgres exited with code 1")
    assert recorded(runtime) == ("idle", "failed")
