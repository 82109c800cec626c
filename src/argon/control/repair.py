"""Start-up repair: finish or roll back what a crash interrupted, and say what was done.

Argon may be killed at any moment.  Every mutation first records a running operation,
so at the next start each unfinished operation is rolled back (a half-made branch or
project is removed), storage drops timelines nobody references, and endpoint states are
re-read from the processes that really run (computes survive an Argon crash and are
re-adopted from their verified postmaster.pid).
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from argon.control.context import ControlContext
from argon.control.models import BranchState, EndpointState, OperationStatus
from argon.control.projects import ProjectService
from argon.control.runtime import EndpointRuntime
from argon.meta import tables as t

logger = logging.getLogger(__name__)

UNFINISHED = (OperationStatus.RUNNING.value, OperationStatus.SCHEDULING.value)


def repair(ctx: ControlContext, runtime: EndpointRuntime, projects: ProjectService) -> list[str]:
    done: list[str] = []
    now = ctx.clock()
    with ctx.tx() as conn:
        ops = conn.execute(select(t.operations).where(t.operations.c.status.in_(UNFINISHED))).all()
        half_branches = conn.execute(select(t.branches).where(
            t.branches.c.state == BranchState.INIT.value)).all()
        conn.execute(update(t.operations).where(t.operations.c.status.in_(UNFINISHED)).values(
            status=OperationStatus.FAILED.value, updated_at=now,
            error="interrupted by an Argon restart; rolled back at the next start",
            failures_count=t.operations.c.failures_count + 1))
    for op in ops:
        done.append(f"marked interrupted operation {op.action} {op.id} as failed")
    for b in half_branches:
        if b.parent_id is None:
            projects._destroy(b.project_id)  # noqa: SLF001 - repair is part of the service
            done.append(f"removed project {b.project_id}: its creation was interrupted")
        else:
            with ctx.tx() as conn:
                conn.execute(t.branches.delete().where(t.branches.c.id == b.id))
            ctx.storage.delete_timeline(b.timeline_id)
            done.append(f"removed half-made branch {b.name} ({b.id})")
    with ctx.tx() as conn:
        known = set(conn.execute(select(t.branches.c.timeline_id)).scalars())
    done += ctx.storage.repair(known)
    with ctx.tx() as conn:
        eps = conn.execute(select(t.endpoints.c.id, t.endpoints.c.state)).all()
    for ep in eps:
        running = runtime.running(ep.id) is not None
        state = EndpointState.ACTIVE.value if running else EndpointState.IDLE.value
        if running:
            runtime.touch(ep.id)
        if state != ep.state:
            with ctx.tx() as conn:
                conn.execute(update(t.endpoints).where(t.endpoints.c.id == ep.id)
                             .values(state=state, updated_at=now))
            if running:
                done.append(f"re-adopted running compute {ep.id}")
    for line in done:
        logger.info("repair: %s", line)
    return done
