"""The roles PgBouncer checks by itself: the SCRAM verifiers the proxy knows.

PgBouncer's ``auth_query`` logs in to the compute as cloud_admin before it can check a
client, so the first pooled client of a woken compute waited for two backend logins in
a row, and for Argon's own check of cloud_admin's password before that.  With the
branch's verifiers in PgBouncer's ``auth_file`` (the same ones the proxy authenticates
the client against, from the metadata), PgBouncer checks a proxied client itself and
logs in to the compute with the client's SCRAM keys (pass-through); ``auth_query``
stays for roles the metadata does not know yet.  The file is rewritten, and PgBouncer
reloaded, whenever a branch's roles change.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from argon.compute.config import SUPERUSER
from argon.meta import tables as t

if TYPE_CHECKING:
    from argon.control.runtime import EndpointRuntime

logger = logging.getLogger(__name__)

SCRAM_PREFIX = "SCRAM-SHA-256$"


def known_roles(runtime: EndpointRuntime, endpoint_id: str) -> tuple[tuple[str, str], ...]:
    """(name, verifier) of the endpoint's branch's roles with a SCRAM password: Argon's
    own roles over SQL-made ones of the same name, as the proxy's lookup orders them."""
    with runtime.ctx.tx() as conn:
        branch_id = conn.execute(select(t.endpoints.c.branch_id).where(
            t.endpoints.c.id == endpoint_id)).scalar()
        if branch_id is None:
            return ()
        found = dict(conn.execute(select(t.sql_role_secrets.c.name, t.sql_role_secrets.c.verifier)
                                  .where(t.sql_role_secrets.c.branch_id == branch_id)).all())
        found.update(conn.execute(select(t.roles.c.name, t.roles.c.scram_verifier).where(
            t.roles.c.branch_id == branch_id)).all())
    return tuple(sorted((str(name), str(v)) for name, v in found.items()
                        if v and str(v).startswith(SCRAM_PREFIX) and name != SUPERUSER))


def refresh_poolers(runtime: EndpointRuntime, branch_id: str) -> None:
    """Rewrite the auth_file of the branch's running poolers (a role changed)."""
    poolers = runtime.ctx.poolers
    if poolers is None:
        return
    with runtime.ctx.tx() as conn:
        endpoints = list(conn.execute(select(t.endpoints.c.id).where(
            t.endpoints.c.branch_id == branch_id)).scalars())
    for endpoint_id in endpoints:
        try:
            if poolers.pid(runtime.pooler_key(endpoint_id)) is None:
                continue
            spec = runtime.spec(endpoint_id)
            address = runtime.ctx.computes.address(spec)
            if address is None:
                continue
            pspec = runtime.pooler_spec(spec, address)
            with runtime.ctx.locks.wait_for(f"pooler:{endpoint_id}"):
                poolers.start(pspec)   # rewrites the auth_file and reloads if it changed
        except Exception as exc:  # noqa: BLE001 - auth_query still answers for the role
            logger.warning("pooler %s: roles not refreshed: %s", endpoint_id, exc)
