"""Compute: real Postgres processes (one per endpoint) and a PgBouncer beside them.

The control plane hands a ``ComputeSpec``; this room renders configuration, starts,
stops and re-adopts processes.  It never reads or writes metadata.
"""

from argon.compute.config import memory_settings, render_config, render_hba
from argon.compute.errors import ComputeError, ComputeStartFailed, InvalidComputeSetting
from argon.compute.initdb import initdb
from argon.compute.pooler import PoolerManager, PoolerSpec, render_pgbouncer_ini
from argon.compute.process import STOP_SIGNALS, ComputeManager
from argon.compute.sockets import socket_dir_for
from argon.compute.spec import ComputeProcess, ComputeSpec, ComputeState

__all__ = [
    "STOP_SIGNALS", "ComputeError", "ComputeManager", "ComputeProcess", "ComputeSpec",
    "ComputeStartFailed", "ComputeState", "InvalidComputeSetting", "PoolerManager",
    "PoolerSpec", "initdb", "memory_settings", "render_config", "render_hba",
    "render_pgbouncer_ini", "socket_dir_for",
]
