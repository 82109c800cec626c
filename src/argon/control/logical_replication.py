"""The project setting ``enable_logical_replication``, with Neon's rules.

One way: once on it stays on (a logical slot on disk keeps a ``wal_level = replica``
compute from starting, so there is no safe way back).  Turning it on restarts the
project's running computes, which come back with ``wal_level = logical``; suspended ones
pick it up at their next start (``compute/replication.py`` renders it).  The operations
of those restarts are what the update returns, as Neon's answer lists its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from argon.control import sqlexec
from argon.control.context import ControlContext
from argon.control.models import OperationAction
from argon.errors import InvalidInput
from argon.meta import tables as t

if TYPE_CHECKING:   # runtime reads the setting from here
    from argon.control.runtime import EndpointRuntime

logger = logging.getLogger(__name__)

SETTING = "enable_logical_replication"
ONE_WAY = "Logical replication cannot be disabled once it has been enabled."
RESTART_ACTIONS = (OperationAction.SUSPEND_COMPUTE.value, OperationAction.START_COMPUTE.value)


def logical_replication_enabled(settings: Mapping[str, Any] | None) -> bool:
    return bool((settings or {}).get(SETTING))


def turned_on(current: Mapping[str, Any], given: Mapping[str, Any] | None) -> bool:
    """Whether an update of ``settings`` turns logical replication on; 400 for off."""
    if not given or SETTING not in given or given[SETTING] is None:
        return False
    value = given[SETTING]
    if not isinstance(value, bool):
        raise InvalidInput(f"settings.{SETTING} must be a boolean")
    was = logical_replication_enabled(current)
    if was and not value:
        raise InvalidInput(ONE_WAY)
    return value and not was


def restart_running_computes(ctx: ControlContext, runtime: EndpointRuntime,
                             project_id: str) -> list[str]:
    """Restart every running compute of the project (they read the project's settings
    at start); returns the ids of the suspend and start operations, oldest first."""
    since = ctx.clock()
    with ctx.tx() as conn:
        endpoints = conn.execute(select(t.endpoints.c.id, t.endpoints.c.branch_id,
                                        t.endpoints.c.type).where(
            t.endpoints.c.project_id == project_id).order_by(t.endpoints.c.id)).all()
    restarted = []
    for endpoint_id, branch_id, kind in endpoints:
        if runtime.running(endpoint_id) is None:
            continue
        runtime.suspend(endpoint_id, reason="logical replication enabled")
        runtime.ensure_running(endpoint_id)
        restarted.append(endpoint_id)
        if kind == "read_write":
            _grant_replication(ctx, runtime, endpoint_id, branch_id)
    logger.info("project %s: logical replication enabled; restarted %s", project_id,
                ", ".join(restarted) or "no running compute")
    if not restarted:
        return []
    with ctx.tx() as conn:
        return list(conn.execute(select(t.operations.c.id).where(
            t.operations.c.project_id == project_id,
            t.operations.c.endpoint_id.in_(restarted),
            t.operations.c.action.in_(RESTART_ACTIONS),
            t.operations.c.created_at >= since)
            .order_by(t.operations.c.created_at, t.operations.c.id)).scalars())


def _grant_replication(ctx: ControlContext, runtime: EndpointRuntime, endpoint_id: str,
                       branch_id: str) -> None:
    """Roles made through the API get REPLICATION when they are made; those made before
    Argon did so get it here, on the branches whose compute runs (others: the owner,
    once it has it, may ALTER ROLE ... REPLICATION them)."""
    with ctx.tx() as conn:
        names = list(conn.execute(select(t.roles.c.name).where(
            t.roles.c.branch_id == branch_id)).scalars())
    if not names:
        return
    try:
        with runtime.connect(endpoint_id) as pg:
            sqlexec.grant_replication(pg, names)
    except Exception as exc:  # noqa: BLE001 - the setting is on; the grant is a courtesy
        logger.warning("endpoint %s: could not give REPLICATION to its roles: %s",
                       endpoint_id, exc)
