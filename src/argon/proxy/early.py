"""Opening the compute connection while the client is still authenticating.

A running compute's route is known from memory, so once the client's startup packet
names an endpoint and a role Argon knows, the proxy connects to the compute (or its
PgBouncer), sends the startup packet and SCRAM's first message there: the backend's
fork, its own startup (or PgBouncer's ``auth_query``) and the first SCRAM round trip
overlap the client's SCRAM round trips instead of following them.  The proof needs the
client's key, so it is sent only after the client has proved its password.

Nothing is started for a client that has not authenticated: a suspended compute has no
route in memory, so it gets no early connection and is woken after authentication as
before.  An early connection does not count as activity (it cannot keep a compute
awake), and at most ``EARLY_PER_ENDPOINT`` of them wait per endpoint, so clients without
a password cannot take more than that many of a compute's connection slots.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass

from argon.pg.scram import ScramVerifier
from argon.proxy import pq
from argon.proxy.auth.scram_client import ScramClient
from argon.proxy.backend import ComputeAddress, ProxyBackend
from argon.proxy.dial import open_compute
from argon.proxy.errors import ErrorKind, ProxyError
from argon.proxy.metrics import ProxyMetrics
from argon.proxy.relay import PgSide

logger = logging.getLogger(__name__)

EARLY_PER_ENDPOINT = 8
# the compute answers a startup packet in milliseconds; past this, connect after auth
EARLY_TIMEOUT = 5.0
MAX_FIRST_MESSAGE = 1 << 16


@dataclass
class EarlyCompute:
    side: PgSide
    address: ComputeAddress
    # SCRAM under way, waiting for the client's key; or else the compute's first message
    # as it came (e.g. an ErrorResponse), for the session to handle
    scram: ScramClient | None
    first: tuple[bytes, bytes] | None


class EarlyAttempt:
    """One session's early connection: taken after authentication, or discarded."""

    def __init__(self, pool: EarlyConnections, endpoint: str,
                 task: asyncio.Task[EarlyCompute | None]) -> None:
        self._pool, self._endpoint, self._task = pool, endpoint, task
        self._released = False

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._pool.waiting[self._endpoint] -= 1

    async def take(self) -> EarlyCompute | None:
        try:
            early = await self._task
        finally:
            self._release()
        if early is not None and early.side.closed:
            return None
        return early

    def discard(self) -> None:
        self._release()
        if not self._task.done():
            self._task.cancel()
            return
        if not self._task.cancelled() and self._task.exception() is None:
            early = self._task.result()
            if early is not None:
                early.side.close()


class EarlyConnections:
    def __init__(self, backend: ProxyBackend, metrics: ProxyMetrics,
                 limit: int = EARLY_PER_ENDPOINT) -> None:
        self.backend = backend
        self.metrics = metrics
        self.limit = limit
        self.waiting: Counter[str] = Counter()

    def start(self, endpoint: str, pooled: bool, params: dict[str, str],
              verifier: ScramVerifier) -> EarlyAttempt | None:
        """Connect now if the compute runs and the endpoint has room; None otherwise."""
        address = self.backend.known_route(endpoint, pooled)
        if address is None or self.waiting[endpoint] >= self.limit:
            return None
        self.waiting[endpoint] += 1
        self.metrics.early_attempts += 1
        task = asyncio.ensure_future(_open(address, params, verifier))
        task.add_done_callback(self._count_failure)
        return EarlyAttempt(self, endpoint, task)

    def _count_failure(self, task: asyncio.Task[EarlyCompute | None]) -> None:
        if not task.cancelled() and task.exception() is None and task.result() is None:
            self.metrics.early_failures += 1


async def _open(address: ComputeAddress, params: dict[str, str],
                verifier: ScramVerifier) -> EarlyCompute | None:
    side: PgSide | None = None
    try:
        async with asyncio.timeout(EARLY_TIMEOUT):
            side = await open_compute(address, lambda: PgSide("compute"))
            side.write(pq.startup_message(params))
            kind, body = await side.read_message(MAX_FIRST_MESSAGE)
            if kind != b"R" or pq.int32(body) != pq.AUTH_SASL:
                return EarlyCompute(side, address, None, (kind, body))
            scram = ScramClient(None)
            side.write(pq.message(b"p", scram.initial(
                [m.decode() for m in body[4:].split(b"\0") if m])))
            kind, body = await side.read_message(MAX_FIRST_MESSAGE)
            if kind != b"R" or pq.int32(body) != pq.AUTH_SASL_CONTINUE:
                raise ProxyError(ErrorKind.COMPUTE, "unexpected SCRAM message from the "
                                 "compute", sqlstate="08006")
            scram.server_first(body[4:], verifier)
        return EarlyCompute(side, address, scram, None)
    except (OSError, TimeoutError, ProxyError) as e:
        # the compute went away or is slow: the session connects after auth instead
        logger.info("early connection to %s failed: %s", address, e)
        if side is not None:
            side.close()
        return None
    except asyncio.CancelledError:
        if side is not None:
            side.close()
        raise
