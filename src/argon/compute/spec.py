"""What the control plane asks the compute room to run, and what it gets back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from argon.pg import PgInstall


class ComputeState(StrEnum):
    """An endpoint's compute state; the values are Neon's wire strings, never change them."""

    INIT = "init"
    ACTIVE = "active"
    IDLE = "idle"


class ComputeMode(StrEnum):
    """What a compute is for (Neon's compute spec ``mode``)."""

    PRIMARY = "primary"     # read-write, owns the timeline's WAL
    REPLICA = "replica"     # hot standby: streams from the primary, follows the archive
    STATIC = "static"       # read-only at a past point (a promoted throwaway clone)


@dataclass(frozen=True)
class ComputeAddress:
    """Where a started compute (or its pooler) takes connections: what a provider's
    ``start`` returns and everything else uses.  ``host`` is what libpq's ``host`` takes:
    an absolute unix socket directory (the local provider's private socket) or a host
    name / IP (a provider whose computes listen on TCP, e.g. pods)."""

    host: str
    port: int      # TCP port, or the number in the socket's name .s.PGSQL.<port>

    @property
    def is_unix(self) -> bool:
        return self.host.startswith("/")

    @property
    def socket_path(self) -> str:
        """The unix socket file (only for a unix address)."""
        return f"{self.host}/.s.PGSQL.{self.port}"


@dataclass(frozen=True)
class ComputeSpec:
    """What to run, never where: the provider that runs it resolves its data directory
    (from the timeline, and for a replica its own copy), its socket and its log."""

    endpoint_id: str
    timeline_id: str
    install: PgInstall            # from argon.pg.choose_install(...)
    # the port it had last time (a PgBouncer that remembered it finds it again): a hint a
    # provider keeps when it can; 0 lets it choose.  Where it really listens comes back
    # from ``start`` (a ComputeAddress).
    port: int = 0
    # a replica's own copy of the timeline (its endpoint id); None: the timeline's own
    copy: str | None = None
    cu_min: float = 0.25
    cu_max: float = 0.25
    pg_settings: Mapping[str, str] = field(default_factory=dict)  # endpoint settings
    # primary (read-write), replica (hot standby following a primary) or static (a
    # read-only compute at a fixed point: time-travel queries), as Neon's ComputeMode
    mode: ComputeMode = ComputeMode.PRIMARY
    # a replica's lowest max_connections & co.: a hot standby refuses to run with less
    # than its primary wrote into the WAL (see control/replicas.py)
    standby_minimums: Mapping[str, int] = field(default_factory=dict)
    # the project's enable_logical_replication: wal_level = logical (compute/replication.py)
    logical_replication: bool = False
    # cloud_admin's password (per project, see control/admin_password.py): every
    # connection Argon makes to the compute, and its PgBouncer's auth_user, log in with it
    admin_password: str = field(default="", repr=False)
    # where Argon's own check of a fresh start logs in: the branch's first database, so
    # that catalog caches Postgres drops at every start (its relcache init files) are
    # built again before the first client (a new branch's) logs in there.  Not when a
    # client was let in early (a wake's): it builds them itself meanwhile.
    warm_database: str = "postgres"

    @property
    def read_only(self) -> bool:
        """Replicas and static computes take no writes (and may stay in recovery)."""
        return self.mode is not ComputeMode.PRIMARY


@dataclass(frozen=True)
class ComputeProcess:
    pid: int
    started_at: datetime          # timezone-aware (UTC), from postmaster.pid
    address: ComputeAddress

    @property
    def port(self) -> int:
        return self.address.port

    @property
    def socket_dir(self) -> Path:
        """The local provider's socket directory (unix addresses only)."""
        return Path(self.address.host)
