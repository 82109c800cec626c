"""File descriptors: raise Argon's limit at start and split it between its doors.

Every client of every door (Postgres wire protocol, ``/sql``, WebSocket, the API) holds
at least one of the process's descriptors, and so do Argon's own files (metadata,
logs, listeners, pipes to the processes it starts).  Linux starts a process with a soft
limit of 1,024 whatever the hard limit allows, so ``argon start`` raises the soft limit
to the hard one, then keeps a reserve that HTTP clients can never take:

- ``reserve``: a quarter of the limit, at least 256 (or half of a tiny limit), kept for
  Postgres clients (two descriptors each: the client and its compute) and Argon itself;
- ``http_connections``: half of the rest, because each HTTP connection may hold a
  second descriptor (its WebSocket relay to the compute, or a ``/sql`` pool connection).

With Debian's defaults (soft 1,024, hard 524,288) that is 131,072 reserved and 196,608
HTTP connections; with a hard limit of 1,024: 256 reserved, 384 HTTP connections.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MIN_RESERVE = 256
MIN_HTTP_CONNECTIONS = 16
# RLIM_INFINITY is not a valid soft limit for descriptors (the kernel's nr_open caps it)
UNLIMITED_TARGET = 1 << 20


@dataclass(frozen=True)
class DescriptorBudget:
    limit: int               # the soft RLIMIT_NOFILE in force
    reserve: int             # kept for Postgres clients and Argon's own files
    http_connections: int    # most HTTP/WebSocket connections open at once

    @classmethod
    def for_limit(cls, limit: int) -> DescriptorBudget:
        reserve = max(limit // 4, min(MIN_RESERVE, limit // 2))
        http = max(MIN_HTTP_CONNECTIONS, (limit - reserve) // 2)
        return cls(limit, reserve, http)


def current_budget() -> DescriptorBudget:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return DescriptorBudget.for_limit(UNLIMITED_TARGET if soft == resource.RLIM_INFINITY
                                      else soft)


def raise_nofile_limit() -> DescriptorBudget:
    """Raise the soft descriptor limit to the hard one; the budget that results."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the descriptor limit from %d to %d: %s", soft,
                           target, exc)
    budget = current_budget()
    logger.info("descriptor limit %d: %d kept for Postgres clients and Argon, at most %d "
                "HTTP/WebSocket connections", budget.limit, budget.reserve,
                budget.http_connections)
    return budget
