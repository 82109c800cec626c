"""The proxy's view of the control plane: wake an endpoint, give a role's verifier.

Implements ``argon.proxy.backend.ProxyBackend`` over the control services.  Blocking
service calls run in worker threads so the proxy's event loop never waits on them.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from argon.control.services import Services
from argon.control.timetravel import parse_timestamp
from argon.errors import NotFound
from argon.meta import tables as t


class ControlProxyBackend:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._ports: dict[int, tuple[str, bool]] = {}

    async def wake(self, endpoint_id: str, *, pooled: bool):  # type: ignore[no-untyped-def]
        from argon.proxy.backend import ComputeAddress  # noqa: PLC0415

        running = await asyncio.to_thread(self.services.runtime.ensure_running, endpoint_id,
                                          pooled=pooled)
        return ComputeAddress(socket_dir=running.socket_dir, port=running.port)

    async def role_secret(self, endpoint_id: str, role: str) -> str | None:
        try:
            return await asyncio.to_thread(self.services.roles.verifier, endpoint_id, role)
        except NotFound:
            return None

    def session_started(self, endpoint_id: str) -> None:
        self.services.runtime.session_started(endpoint_id)

    def session_ended(self, endpoint_id: str) -> None:
        self.services.runtime.session_ended(endpoint_id)

    def endpoint_for_port(self, port: int) -> tuple[str, bool] | None:
        return self._ports.get(port)

    async def wake_at(self, target: str, kind: str, value: str):  # type: ignore[no-untyped-def]
        """A temporary read-only compute at a past point: ``options=neon_lsn:`` queries."""
        from argon.proxy.backend import ComputeAddress  # noqa: PLC0415

        if kind == "lsn":
            eph = await asyncio.to_thread(self.services.branches.ephemeral_compute_at,
                                          target, lsn=value)
        else:
            eph = await asyncio.to_thread(self.services.branches.ephemeral_compute_at,
                                          target, timestamp=parse_timestamp(value))
        return ComputeAddress(socket_dir=eph.socket_dir, port=eph.port), eph.id

    async def release(self, lease: str) -> None:
        await asyncio.to_thread(self.services.branches.release_ephemeral, lease)

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

