"""The one place host paths of timelines leave storage: the local compute provider's
locator (``argon.compute.placement.DataDirs``), handed to it when Argon is wired up
(``control/services.py``).  Control itself never asks for a directory."""

from __future__ import annotations

from pathlib import Path

from argon.storage.replicas import ReplicaStore
from argon.storage.timelines import Storage


class LocalDataDirs:
    """A timeline's data directory, or a replica's own copy of it, on this host."""

    def __init__(self, storage: Storage, replicas: ReplicaStore) -> None:
        self._storage = storage
        self._replicas = replicas

    def pgdata(self, timeline_id: str, copy: str | None = None) -> Path:
        if copy is None:
            return self._storage.pgdata(timeline_id)
        return self._replicas.pgdata(timeline_id, copy)
