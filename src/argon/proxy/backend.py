"""The proxy's seam to the control plane: wake an endpoint, look up a role's secret,
report session activity.  The proxy never imports ``control`` or ``meta``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ComputeAddress:
    """Where the proxy connects: what the control plane's compute provider returned.
    ``host`` is a unix socket directory (absolute path) or a host name / IP for TCP."""

    host: str            # socket directory of the compute (or its PgBouncer), or TCP host
    port: int            # TCP port, or the number in the socket file name .s.PGSQL.<port>

    @property
    def is_unix(self) -> bool:
        return self.host.startswith("/")

    @property
    def path(self) -> str:
        """The unix socket file (unix addresses only)."""
        return f"{self.host}/.s.PGSQL.{self.port}"

    def __str__(self) -> str:   # for logs
        if self.is_unix:
            return self.path
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class ProxyBackend(Protocol):
    async def wake(self, endpoint_id: str, *, pooled: bool,
                   client: str | None = None) -> ComputeAddress: ...
    # raises argon.errors.NotFound for an unknown endpoint; starts a suspended compute
    # (and, for pooled, its PgBouncer); concurrent calls share one start; returns where
    # to connect.  ``client`` is the client's address: starts are rate-limited by it
    # (a refusal is a ProxyError with SQLSTATE 53300).  Call it only for a client that
    # has authenticated. The compute (or PgBouncer) wants SCRAM too: the proxy logs in
    # as the client's role with the client's ClientKey (see auth/scram_client.py).

    async def role_secret(self, endpoint_id: str, role: str) -> str | None: ...
    # the role's SCRAM verifier ("SCRAM-SHA-256$...") on that endpoint's branch, or None

    async def ip_allowed(self, endpoint_id: str, address: str) -> bool: ...
    # whether the project's IP allow list lets the client at ``address`` reach the
    # endpoint (asked after routing, before authentication)

    def known_route(self, endpoint_id: str, pooled: bool) -> ComputeAddress | None: ...
    # where a compute known to be running listens, from memory only: no start, no lock,
    # no metadata query, and not counted as activity (asked before authentication)

    def route_failed(self, endpoint_id: str) -> None: ...
    # the address ``wake`` gave could not be connected to (the compute died): forget it

    def session_started(self, endpoint_id: str) -> None: ...   # keeps the endpoint awake

    def session_ended(self, endpoint_id: str) -> None: ...

    def endpoint_for_port(self, port: int) -> tuple[str, bool] | None: ...
    # (endpoint_id, pooled) when a dedicated per-endpoint listener port is used

    async def wake_at(self, target: str, kind: str, value: str) -> tuple[ComputeAddress, str]:
        ...
    # A temporary read-only compute of ``target`` (endpoint or branch id) at a past point
    # (kind "lsn" or "timestamp"); returns its address and a lease to ``release``.

    async def release(self, lease: str) -> None: ...
