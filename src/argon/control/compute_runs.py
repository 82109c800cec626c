"""Compute runs: when each compute started and stopped, and at what size.

The consumption history's active time and compute time come from these rows.  The
runtime opens a run in the transaction that marks an endpoint active and closes it in the
one that marks it idle (also when the reconciler finds a compute that died); the caller
owns the transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Connection, select, update

from argon.control.context import ControlContext
from argon.meta import tables as t

logger = logging.getLogger(__name__)


def opened(conn: Connection, endpoint_id: str, project_id: str, branch_id: str,
           cu: float, now: datetime) -> None:
    """Record that the compute of ``endpoint_id`` started at ``now`` with ``cu`` CU (its
    autoscaling maximum: Argon sizes a compute's memory by it and does not autoscale)."""
    if closed(conn, endpoint_id, now):
        # A stop Argon did not see (it was killed with the compute): counted until now.
        logger.info("compute %s: closed a run with no recorded stop", endpoint_id)
    conn.execute(t.compute_runs.insert().values(
        project_id=project_id, branch_id=branch_id, endpoint_id=endpoint_id, cu=cu,
        started_at=now, stopped_at=None))


def closed(conn: Connection, endpoint_id: str, now: datetime) -> bool:
    """Record that the compute of ``endpoint_id`` stopped at ``now``; False when it had
    no open run (it was not running)."""
    result = conn.execute(update(t.compute_runs).where(
        t.compute_runs.c.endpoint_id == endpoint_id,
        t.compute_runs.c.stopped_at.is_(None)).values(stopped_at=now))
    return bool(result.rowcount)


def close_stale(ctx: ControlContext, endpoint_id: str) -> None:
    """At start-up, for a compute found not running: close its open run at the last sign
    of life Argon has (the branch's last time/LSN sample, taken every ~10 s while it
    ran), not at now, so the time Argon and the compute were both down is not counted."""
    with ctx.tx() as conn:
        run = conn.execute(select(t.compute_runs.c.started_at, t.branches.c.timeline_id)
                           .join(t.branches, t.branches.c.id == t.compute_runs.c.branch_id)
                           .where(t.compute_runs.c.endpoint_id == endpoint_id,
                                  t.compute_runs.c.stopped_at.is_(None))).first()
    if run is None:
        return
    samples = ctx.storage.samples(run.timeline_id)
    last = samples[-1][0] if samples else run.started_at
    with ctx.tx() as conn:
        closed(conn, endpoint_id, min(max(last, run.started_at), ctx.clock()))
    logger.info("compute %s was found stopped: its run closed at %s", endpoint_id, last)
