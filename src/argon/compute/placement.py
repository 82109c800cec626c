"""Where a spec runs on this host: the local provider's own business, nobody else's.

A ``ComputeSpec`` names a timeline; the local provider (``ComputeManager``) turns it into
host paths here, through a ``DataDirs`` locator it is given (storage's local
implementation) and the home its sockets and logs live in.  Control never sees these
paths: it gets a ``ComputeAddress`` back from ``start``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from argon.compute.sockets import socket_dir_for
from argon.compute.spec import ComputeSpec


class DataDirs(Protocol):
    """Finds a timeline's data directory on this host (storage's local implementation,
    ``argon.storage.locator.LocalDataDirs``); ``copy`` names a replica's own copy."""

    def pgdata(self, timeline_id: str, copy: str | None = None) -> Path: ...


@dataclass(frozen=True)
class Placement:
    pgdata: Path
    socket_dir: Path     # private (0700, Postgres account) unix socket directory
    log_path: Path       # the postmaster's stdout/stderr, appended


@dataclass(frozen=True)
class HostLayout:
    """Data directories from ``dirs``; sockets and logs under ``home``."""

    dirs: DataDirs
    home: Path

    def place(self, spec: ComputeSpec) -> Placement:
        return Placement(pgdata=self.dirs.pgdata(spec.timeline_id, spec.copy),
                         socket_dir=socket_dir_for(self.home, spec.endpoint_id),
                         log_path=self.home / "logs" / f"{spec.endpoint_id}.log")

    def pooler_socket_dir(self, endpoint_id: str) -> Path:
        return socket_dir_for(self.home, endpoint_id + "-pooler")

    def pooler_workdir(self, endpoint_id: str) -> Path:
        return self.home / "run" / "pgbouncer" / endpoint_id
