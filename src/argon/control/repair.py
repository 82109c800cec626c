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

from argon.control import compute_address, compute_runs
from argon.control.context import ControlContext
from argon.control.models import BranchState, EndpointState, OperationAction, OperationStatus
from argon.control.projects import ProjectService
from argon.control.runtime import EndpointRuntime
from argon.control.safe_migrations import orphan_branches
from argon.meta import tables as t

logger = logging.getLogger(__name__)

UNFINISHED = (OperationStatus.RUNNING.value, OperationStatus.SCHEDULING.value)


def repair(ctx: ControlContext, runtime: EndpointRuntime, projects: ProjectService, *,
           serving: bool = False) -> list[str]:
    """``serving``: this process already serves the API (it took the lead from a leader
    that died), so new work may begin at any moment."""
    done: list[str] = []
    now = ctx.clock()
    with ctx.tx() as conn:
        # Half-made and resetting branches first: each was written with (or after) its
        # operation, so the operations read next include theirs.
        half_made = conn.execute(select(t.branches).where(
            t.branches.c.state == BranchState.INIT.value)).all()
        resetting_rows = conn.execute(select(t.branches.c.id, t.branches.c.name).where(
            t.branches.c.state == BranchState.RESETTING.value)).all()
        unfinished = conn.execute(select(t.operations).where(
            t.operations.c.status.in_(UNFINISHED))).all()
        # Another Argon on the same metadata database may be working on some of them:
        # its claims (control/coordinator.py) say so; only a dead holder's are rolled back.
        live = [op for op in unfinished if ctx.locks.claimed(f"op:{op.id}")]
        ops = [op for op in unfinished if op not in live]
        busy_branches = {op.branch_id for op in live}
        busy_projects = {op.project_id for op in live}
        half_branches = [b for b in half_made if b.id not in busy_branches and not (
            b.parent_id is None and b.project_id in busy_projects)]
        if ops:
            conn.execute(update(t.operations).where(
                t.operations.c.id.in_([op.id for op in ops])).values(
                status=OperationStatus.FAILED.value, updated_at=now,
                error="interrupted by an Argon restart; rolled back at the next start",
                failures_count=t.operations.c.failures_count + 1))
    for op in ops:
        done.append(f"marked interrupted operation {op.action} {op.id} as failed")
    # A restore interrupted before its metadata swap left the old state (its new
    # timeline is unreferenced and removed below); after the swap the new one.
    resetting = [b for b in resetting_rows if b.id not in busy_branches]
    if resetting:
        with ctx.tx() as conn:
            conn.execute(update(t.branches).where(
                t.branches.c.id.in_([b.id for b in resetting]),
                t.branches.c.state == BranchState.RESETTING.value).values(
                state=BranchState.READY.value, updated_at=now))
    for b in resetting:
        done.append(f"branch {b.name} ({b.id}): an interrupted restore was rolled back")
    done += _remove_half_made(ctx, runtime, half_branches, projects)
    done += _remove_half_made(ctx, runtime, _unanswered_branches(ctx, ops), projects)
    if live or serving:
        # The sweeps below cannot tell work in progress (another Argon's, or this one's
        # API) from leftovers: they wait for a start with nothing running.
        logger.info("repair: %d operation(s) still run%s; storage and endpoint sweeps "
                    "skipped", len(live), ", the API serves" if serving else "")
        for line in done:
            logger.info("repair: %s", line)
        return done
    done += _remove_orphan_migration_branches(ctx, runtime)
    with ctx.tx() as conn:
        known = set(conn.execute(select(t.branches.c.timeline_id)).scalars())
    done += ctx.storage.repair(known)
    done += runtime.replicas.repair()   # unfinished seeds, data of deleted replicas
    with ctx.tx() as conn:
        eps = conn.execute(select(t.endpoints.c.id, t.endpoints.c.state,
                                  t.endpoints.c.compute_host)).all()
    for ep in eps:
        running = runtime.running(ep.id) is not None
        if not running and ep.compute_host and compute_address.live_recorded(ctx, ep.id):
            continue   # another Argon process on this metadata runs it: its own to keep
        state = EndpointState.ACTIVE.value if running else EndpointState.IDLE.value
        if running:
            runtime.touch(ep.id)
            _adopt_port(ctx, runtime, ep.id)
        else:
            compute_runs.close_stale(ctx, ep.id)
            if ep.compute_host:   # the address of a compute that died
                with ctx.tx() as conn:
                    conn.execute(update(t.endpoints).where(t.endpoints.c.id == ep.id)
                                 .values(**compute_address.CLEARED))
        if state != ep.state:
            with ctx.tx() as conn:
                conn.execute(update(t.endpoints).where(t.endpoints.c.id == ep.id)
                             .values(state=state, updated_at=now))
            if running:
                done.append(f"re-adopted running compute {ep.id}")
    for line in done:
        logger.info("repair: %s", line)
    return done


def _remove_half_made(ctx: ControlContext, runtime: EndpointRuntime,
                      half_branches: list,  # type: ignore[type-arg]
                      projects: ProjectService) -> list[str]:
    done = []
    for b in half_branches:
        if b.parent_id is None:
            projects._destroy(b.project_id)  # noqa: SLF001 - repair is part of the service
            done.append(f"removed project {b.project_id}: its creation was interrupted")
        else:
            _drop_branch(ctx, runtime, b.id, b.timeline_id, "its creation was interrupted")
            done.append(f"removed half-made branch {b.name} ({b.id})")
    return done


def _unanswered_branches(ctx: ControlContext, ops: list) -> list:  # type: ignore[type-arg]
    """Half-made too: a branch is marked ready before its endpoints are made and its
    operation ends after them, so a ready branch whose ``create_branch`` operation died
    never answered its request, perhaps without the endpoints it asked for.  It goes,
    as ``BranchService.create`` removes one whose endpoint failed (all or nothing);
    one that already has a child was used meanwhile and stays."""
    ids = {op.branch_id for op in ops
           if op.action == OperationAction.CREATE_BRANCH and op.branch_id}
    if not ids:
        return []
    with ctx.tx() as conn:
        rows = conn.execute(select(t.branches).where(
            t.branches.c.id.in_(ids), t.branches.c.state == BranchState.READY.value,
            t.branches.c.parent_id.is_not(None))).all()
        parents = set(conn.execute(select(t.branches.c.parent_id).where(
            t.branches.c.parent_id.in_(ids))).scalars())
    return [b for b in rows if b.id not in parents]


def _drop_branch(ctx: ControlContext, runtime: EndpointRuntime, branch_id: str,
                 timeline: str | None, why: str) -> None:
    """A branch, its endpoints (their computes stopped) and its timeline."""
    with ctx.tx() as conn:
        eps = list(conn.execute(select(t.endpoints.c.id).where(
            t.endpoints.c.branch_id == branch_id)).scalars())
    for ep in eps:
        runtime.suspend(ep, reason=why)
    with ctx.tx() as conn:
        conn.execute(t.endpoints.delete().where(t.endpoints.c.branch_id == branch_id))
        conn.execute(t.branches.delete().where(t.branches.c.id == branch_id))
    if timeline is not None:
        ctx.storage.delete_timeline(timeline)


def _remove_orphan_migration_branches(ctx: ControlContext,
                                      runtime: EndpointRuntime) -> list[str]:
    """A crash inside ``prepare_database_migration`` (branch made, migration not yet
    recorded) leaves a temporary branch nothing will complete or expire: remove it."""
    done = []
    with ctx.tx() as conn:
        orphans = orphan_branches(conn)
    for b in orphans:
        with ctx.tx() as conn:
            timeline = conn.execute(select(t.branches.c.timeline_id).where(
                t.branches.c.id == b.id)).scalar()
        _drop_branch(ctx, runtime, b.id, timeline, "temporary migration branch removed")
        done.append(f"removed temporary migration branch {b.name} ({b.id}) of project "
                    f"{b.project_id}: its migration was never recorded")
    return done


def _adopt_port(ctx: ControlContext, runtime: EndpointRuntime, endpoint_id: str) -> None:
    """A crash between a compute's spawn and its metadata update (e.g. a restore's
    restart) leaves a running compute whose port the metadata does not know yet."""
    spec = runtime.spec(endpoint_id)
    try:
        address = ctx.computes.start(spec)   # returns the running compute as it is
        real = address.port
    except Exception as exc:  # noqa: BLE001 - reported; the next wake retries
        logger.warning("repair: could not read compute %s's port: %s", endpoint_id, exc)
        return
    with ctx.tx() as conn:   # and its address, as the provider answers it
        conn.execute(update(t.endpoints).where(t.endpoints.c.id == endpoint_id)
                     .values(**compute_address.recorded_values(address)))
    if real != spec.port:
        logger.info("repair: compute %s runs on port %d (metadata said %d)", endpoint_id,
                    real, spec.port)
    # A PgBouncer left by an older Argon may still listen on TCP and trust everyone:
    # start() rewrites its configuration (and restarts it if it has a TCP listener).
    pooler = runtime.pooler_spec(spec, address)
    if ctx.poolers is not None and ctx.poolers.pid(pooler) is not None:
        try:
            ctx.poolers.start(pooler)
        except Exception as exc:  # noqa: BLE001 - reported; the next pooled wake retries
            logger.warning("repair: could not refresh PgBouncer of %s: %s", endpoint_id, exc)
