"""CPU time and memory of a Postgres instance, read from /proc (Linux).

A compute is its postmaster and the postmaster's children.  CPU is counted as the
postmaster's own time plus what its reaped children used (``cutime``/``cstime``) plus
the live children's time, so the total only grows while the instance lives.  Memory is
the sum of the processes' PSS (shared buffers counted once across them), or RSS where
``smaps_rollup`` cannot be read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcSample:
    cpu_seconds: float
    memory_bytes: int
    processes: int


def _stat(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()   # fields from 3 (state) on


def children(pid: int) -> list[int]:
    """The live children of ``pid``: from ``/proc/<pid>/task/*/children`` (one small read),
    or, on kernels without that file, from a walk of /proc."""
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
        return [int(c) for task in tasks for c in (task / "children").read_text().split()]
    except FileNotFoundError:
        pass
    except OSError:
        return []
    out = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None \
                and int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def _memory(pid: int) -> int:
    try:
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int((PROC / str(pid) / "statm").read_text().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def instance(postmaster: int) -> ProcSample | None:
    """The instance led by ``postmaster``; None if it is gone."""
    own = _stat(postmaster)
    if own is None:
        return None
    ticks = sum(int(v) for v in own[11:15])   # utime stime cutime cstime
    memory = _memory(postmaster)
    kids = children(postmaster)
    for pid in kids:
        fields = _stat(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
            memory += _memory(pid)
    return ProcSample(cpu_seconds=ticks / CLK_TCK, memory_bytes=memory,
                      processes=1 + len(kids))
