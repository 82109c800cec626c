"""Counters the proxy keeps for /metrics (the lead exports them)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class ProxyMetrics:
    connections_total: int = 0
    connections_active: int = 0
    websocket_connections_total: int = 0
    errors: Counter[str] = field(default_factory=Counter)   # by ErrorKind value
    bytes_from_clients: int = 0
    bytes_to_clients: int = 0
    cancel_requests: int = 0
    wakes: int = 0
    early_connections: int = 0   # compute logins that overlapped the client's own
    early_attempts: int = 0      # such logins begun (used, discarded or failed)
    early_failures: int = 0      # begun but the compute did not answer: login after auth
    spare_logins: int = 0        # sessions that took a ready login (PgBouncer or backend)
    reused_logins: int = 0       # PgBouncer logins kept after a clean session
    reset_backends: int = 0      # direct-door backends kept after a clean session's reset
    stale_backends: int = 0      # kept backends closed: login settings changed, reset failed

    def snapshot(self) -> dict[str, object]:
        return {"connections_total": self.connections_total,
                "connections_active": self.connections_active,
                "websocket_connections_total": self.websocket_connections_total,
                "errors": dict(self.errors), "bytes_from_clients": self.bytes_from_clients,
                "bytes_to_clients": self.bytes_to_clients,
                "cancel_requests": self.cancel_requests, "wakes": self.wakes,
                "early_connections": self.early_connections,
                "early_attempts": self.early_attempts,
                "early_failures": self.early_failures,
                "spare_logins": self.spare_logins,
                "reused_logins": self.reused_logins,
                "reset_backends": self.reset_backends,
                "stale_backends": self.stale_backends}
