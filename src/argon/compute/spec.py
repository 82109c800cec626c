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
class ComputeSpec:
    endpoint_id: str
    pgdata: Path
    install: PgInstall            # from argon.pg.choose_install(...)
    port: int                     # TCP port on 127.0.0.1 only
    socket_dir: Path              # private (0700, Postgres account) unix socket directory
    log_path: Path                # the postmaster's stdout/stderr, appended
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

    @property
    def read_only(self) -> bool:
        """Replicas and static computes take no writes (and may stay in recovery)."""
        return self.mode is not ComputeMode.PRIMARY


@dataclass(frozen=True)
class ComputeProcess:
    pid: int
    started_at: datetime          # timezone-aware (UTC), from postmaster.pid
    port: int
    socket_dir: Path
