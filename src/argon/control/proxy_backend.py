"""The proxy's view of the control plane: wake an endpoint, give a role's verifier.

Implements ``argon.proxy.backend.ProxyBackend`` over the control services.  The
connection path of a running compute stays in memory: routes and verifiers are cached
here and dropped by the control plane's events (``ctx.events``) when a compute starts,
stops or moves and when roles change.  Whatever must block (a start, a metadata
lookup) runs in the proxy's own bounded pools, never asyncio's default executor.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import select

from argon.control.ip_allow import address_allowed
from argon.control.services import Services
from argon.control.timetravel import parse_timestamp
from argon.control.wake_limits import WakeLimits, WakeRefused
from argon.meta import tables as t
from argon.proxy.workers import ProxyWorkers, shared_workers

if TYPE_CHECKING:
    from argon.compute import ComputeAddress as RoomAddress
    from argon.proxy.backend import ComputeAddress

logger = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

WAKE_REFUSED_TEXT = "too many compute starts requested; retry in a few seconds"


class EventCache(Generic[K, V]):
    """Values computed off the event loop, grouped (by endpoint, by "roles") so that a
    control-plane event drops a whole group.  A value computed before such an event is
    not stored after it: the group's generation moved on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[K, tuple[str, V]] = {}
        self._generations: dict[str, int] = {}

    def get(self, key: K) -> V | None:
        hit = self._values.get(key)
        return None if hit is None else hit[1]

    def generation(self, group: str) -> int:
        with self._lock:
            return self._generations.get(group, 0)

    def put(self, group: str, key: K, value: V, generation: int) -> None:
        with self._lock:
            if self._generations.get(group, 0) == generation:
                self._values[key] = (group, value)

    def drop(self, group: str) -> None:
        with self._lock:
            self._generations[group] = self._generations.get(group, 0) + 1
            for key in [k for k, (g, _v) in self._values.items() if g == group]:
                del self._values[key]


def _proxy_address(at: RoomAddress) -> ComputeAddress:
    """The compute room's address as the proxy's type."""
    from argon.proxy.backend import ComputeAddress  # noqa: PLC0415

    return ComputeAddress(host=at.host, port=at.port)


def _resolve(future: asyncio.Future[V], value: V) -> None:
    if not future.done():
        future.set_result(value)


def wake_refused() -> Exception:
    from argon.proxy.errors import ErrorKind, ProxyError  # noqa: PLC0415

    return ProxyError(ErrorKind.RATE_LIMITED, WAKE_REFUSED_TEXT, sqlstate="53300",
                      retryable=True)


class ControlProxyBackend:
    def __init__(self, services: Services, *, workers: ProxyWorkers | None = None,
                 limits: WakeLimits | None = None) -> None:
        self.services = services
        self._ports: dict[int, tuple[str, bool]] = {}
        self.workers = workers or shared_workers()
        self.limits = limits or WakeLimits()
        self.routes: EventCache[tuple[str, bool], ComputeAddress] = EventCache()
        self.verifiers: EventCache[tuple[str, str], str] = EventCache()
        self._wakes: dict[tuple[str, bool], asyncio.Future[ComputeAddress]] = {}
        services.ctx.events.on_compute_changed(self.routes.drop)
        services.ctx.events.on_compute_started(self._compute_started)
        services.ctx.events.on_roles_changed(lambda _branch: self.verifiers.drop("roles"))

    # -- wake ----------------------------------------------------------------------------

    async def wake(self, endpoint_id: str, *, pooled: bool,
                   client: str | None = None) -> ComputeAddress:
        """Where to connect; a running compute is answered from memory, without a lock,
        a thread or a metadata query.  Otherwise one shared start per (endpoint, pooled):
        concurrent connections await the same future; only a real start takes a token
        from ``client``'s and the endpoint's rate limit."""
        key = (endpoint_id, pooled)
        cached = self.routes.get(key)
        if cached is not None and self.services.runtime.claim(endpoint_id):
            return cached
        for _ in range(3):
            future = self._wakes.get(key)
            mine = future is None
            if future is None:
                future = asyncio.ensure_future(self._start(key, client))
                self._wakes[key] = future
                future.add_done_callback(partial(self._wake_done, key))
            try:
                return await asyncio.shield(future)
            except WakeRefused:
                if mine:   # another client's refusal: try a start of our own
                    raise wake_refused() from None
        raise wake_refused()

    def _wake_done(self, key: tuple[str, bool], future: asyncio.Future[ComputeAddress]) -> None:
        if self._wakes.get(key) is future:
            del self._wakes[key]
        if not future.cancelled():
            future.exception()   # retrieved: awaiters get it; no "never retrieved" noise

    async def _start(self, key: tuple[str, bool], client: str | None) -> ComputeAddress:
        endpoint_id, pooled = key
        limits = self.limits
        loop = asyncio.get_running_loop()
        early: asyncio.Future[ComputeAddress] = loop.create_future()

        def ready(at: RoomAddress) -> None:   # in the start's thread
            loop.call_soon_threadsafe(_resolve, early, _proxy_address(at))

        def ensure_running() -> tuple[ComputeAddress, int]:   # in the start's thread
            running = self.services.runtime.ensure_running(
                endpoint_id, pooled=pooled, ready=ready,
                before_start=lambda: limits.take(client, endpoint_id))
            # read after the start's own compute_changed (which a generation read before
            # it would miss): a suspend from here on still drops what is put below
            return _proxy_address(running.address), self.routes.generation(endpoint_id)

        start = asyncio.ensure_future(self.workers.run_wake(ensure_running))
        # the client logs in as soon as the compute lets sessions in; the start records
        # itself (and checks cloud_admin's password) meanwhile
        either: list[asyncio.Future[Any]] = [early, start]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not start.done():
            start.add_done_callback(partial(self._started_late, key))
            return early.result()
        early.cancel()
        address, generation = start.result()
        self.routes.put(endpoint_id, key, address, generation)
        return address

    def _started_late(self, key: tuple[str, bool],
                      start: asyncio.Future[tuple[ComputeAddress, int]]) -> None:
        """A start that let its client in before it finished: the route it answered is
        kept once it did, the pooled one too (``_compute_started`` keeps only the direct
        one), so the next session needs no thread hop and may log in early."""
        endpoint_id = key[0]
        if start.cancelled():
            return
        if start.exception() is not None:   # e.g. its metadata write
            logger.warning("endpoint %s: the start failed after it took sessions: %s",
                           endpoint_id, start.exception())
            return
        address, generation = start.result()
        self.routes.put(endpoint_id, key, address, generation)

    def _compute_started(self, endpoint_id: str, at: RoomAddress) -> None:
        """Any start (a branch's or a project's first, the reconciler's restart, a wake)
        leaves the direct route in memory: the first session needs no thread hop and
        may log in early.  The pooled route waits for a pooled session (its PgBouncer
        may not run yet)."""
        self.routes.put(endpoint_id, (endpoint_id, False), _proxy_address(at),
                        self.routes.generation(endpoint_id))

    def known_route(self, endpoint_id: str, pooled: bool) -> ComputeAddress | None:
        """The cached route of a running compute, None while it starts or suspends."""
        cached = self.routes.get((endpoint_id, pooled))
        if cached is None or not self.services.runtime.available(endpoint_id):
            return None
        return cached

    def route_failed(self, endpoint_id: str) -> None:
        """The proxy could not connect where we said (e.g. the compute was killed)."""
        self.routes.drop(endpoint_id)

    # -- roles ---------------------------------------------------------------------------

    async def role_secret(self, endpoint_id: str, role: str) -> str | None:
        key = (endpoint_id, role)
        cached = self.verifiers.get(key)
        if cached is not None:
            return cached
        generation = self.verifiers.generation("roles")
        # an unknown endpoint raises NotFound: the proxy names it ("endpoint ... does not
        # exist") instead of reporting a password failure for a right password
        secret = await self.workers.run_quick(self.services.roles.verifier, endpoint_id, role)
        if secret is not None:
            self.verifiers.put("roles", key, secret, generation)
        return secret

    # -- IP allow list (argon.control.ip_allow) ------------------------------------------

    async def ip_allowed(self, endpoint_id: str, address: str) -> bool:
        """Whether the project's ``allowed_ips`` lets ``address`` reach the endpoint;
        answered from memory until a project or branch update clears the cache."""
        cache = self.services.ctx.ip_allow
        rule = cache.cached(endpoint_id)
        patterns = rule.patterns if rule is not None else await self.workers.run_quick(
            cache.load, self.services.ctx.tx, endpoint_id)
        return address_allowed(address, patterns)

    def session_started(self, endpoint_id: str) -> None:
        self.services.runtime.session_started(endpoint_id)

    def session_ended(self, endpoint_id: str) -> None:
        self.services.runtime.session_ended(endpoint_id)

    def endpoint_for_port(self, port: int) -> tuple[str, bool] | None:
        return self._ports.get(port)

    async def wake_at(self, target: str, kind: str, value: str):  # type: ignore[no-untyped-def]
        """A temporary read-only compute at a past point: ``options=neon_lsn:`` queries."""
        from argon.proxy.backend import ComputeAddress  # noqa: PLC0415

        branches = self.services.branches
        if kind == "lsn":
            eph = await self.workers.run_wake(partial(branches.ephemeral_compute_at, target,
                                                      lsn=value))
        else:
            eph = await self.workers.run_wake(partial(
                branches.ephemeral_compute_at, target, timestamp=parse_timestamp(value)))
        return ComputeAddress(host=eph.address.host, port=eph.address.port), eph.id

    async def release(self, lease: str) -> None:
        await self.workers.run_wake(self.services.branches.release_ephemeral, lease)

    # -- per-endpoint loopback ports (local mode) -----------------------------------------

    def endpoint_ports(self) -> dict[int, tuple[str, bool]]:
        """Every endpoint's (direct, pooled) loopback ports, as the proxy must listen."""
        with self.services.ctx.tx() as conn:
            rows = conn.execute(select(t.endpoints.c.id, t.endpoints.c.proxy_port,
                                       t.endpoints.c.pooler_port)).all()
        ports: dict[int, tuple[str, bool]] = {}
        for r in rows:
            if r.proxy_port:
                ports[r.proxy_port] = (r.id, False)
            if r.pooler_port:
                ports[r.pooler_port] = (r.id, True)
        self._ports = ports
        return ports

