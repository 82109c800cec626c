"""Compute: real Postgres processes (one per endpoint) and a PgBouncer beside them.

The control plane hands a ``ComputeSpec`` (a timeline, never a directory) to a
``ComputeProvider`` and gets a ``ComputeAddress`` back (``provider.py``); this room's
local provider renders configuration, starts, stops and re-adopts processes.  It never
reads or writes metadata.
"""

from argon.compute.config import memory_settings, render_config, render_hba
from argon.compute.errors import ComputeError, ComputeStartFailed, InvalidComputeSetting
from argon.compute.initdb import initdb
from argon.compute.placement import DataDirs, HostLayout, Placement
from argon.compute.pooler import PoolerManager, PoolerSpec, render_pgbouncer_ini
from argon.compute.process import STOP_SIGNALS, ComputeManager
from argon.compute.provider import ComputeProvider, PoolerProvider
from argon.compute.sockets import socket_dir_for
from argon.compute.spec import ComputeAddress, ComputeProcess, ComputeSpec, ComputeState

__all__ = [
    "STOP_SIGNALS", "ComputeAddress", "ComputeError", "ComputeManager", "ComputeProcess",
    "ComputeProvider", "ComputeSpec", "ComputeStartFailed", "ComputeState", "DataDirs",
    "HostLayout", "InvalidComputeSetting", "Placement", "PoolerManager", "PoolerProvider",
    "PoolerSpec", "initdb", "memory_settings", "render_config", "render_hba",
    "render_pgbouncer_ini", "socket_dir_for",
]
