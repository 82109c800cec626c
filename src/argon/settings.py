"""Argon's settings: one immutable object built from flags and environment at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_API_PORT = 4400
DEFAULT_PG_PORT = 55432   # not 5432: a system Postgres may be there
DEFAULT_HTTP_PORT = 4444
DEFAULT_SUSPEND_TIMEOUT = 300
# The Neon-style mode's domain when none is given: two labels under .localhost, so a
# wildcard is never needed and glibc (nss-myhostname) and systemd-resolved send every
# name under it to loopback without setup.
NEON_STYLE_DOMAIN = "argon.localhost"


def default_home() -> Path:
    """``$ARGON_HOME``, else a per-user data directory (``/var/lib/argon`` for root)."""
    if env := os.environ.get("ARGON_HOME"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/argon")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "argon"


@dataclass(frozen=True)
class Settings:
    home: Path
    listen_host: str = "127.0.0.1"
    api_port: int = DEFAULT_API_PORT
    pg_port: int = DEFAULT_PG_PORT
    http_port: int = DEFAULT_HTTP_PORT
    # With a domain that has wildcard DNS, endpoint hosts are ep-x.<domain> (SNI routing);
    # without one (the default), each endpoint gets a stable loopback port instead.
    domain: str | None = None
    # HTTPS for /sql and WebSocket where Neon's serverless driver looks (443): None picks
    # 443 in the domain mode when Argon may bind it, 0 turns it off.
    https_port: int | None = None
    clone_driver: str = "auto"
    # Timelines in an XFS (reflink) image when the home has no reflinks (storage/pool.py):
    # off, auto (when root with loop devices and xfsprogs) or xfs-image (insist).
    storage_pool: str = "auto"
    default_suspend_timeout: int = DEFAULT_SUSPEND_TIMEOUT
    reconcile_interval: float = 1.0
    # seconds between the monitoring sampler's figures (control/monitoring.py); 0: off
    monitoring_interval: float = 10.0
    metadata_url: str | None = None  # default: SQLite in the home
    # s3://bucket/prefix: every timeline's WAL also goes to this bucket (AWS_* variables
    # give endpoint, region and credentials); None: local archives only
    object_store_url: str | None = None
    # A direct session that ended cleanly leaves its Postgres backend, after DISCARD ALL,
    # to the next client of the role (argon.proxy.backend_reset); False: every direct
    # connection gets a backend of its own, as on Neon (slower: a fork and a login each)
    keep_direct_backends: bool = True

    @property
    def db_url(self) -> str:
        return self.metadata_url or f"sqlite:///{self.home / 'argon.db'}"

    @property
    def public_host(self) -> str:
        return self.domain or self.listen_host
