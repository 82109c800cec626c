"""Reading ``postmaster.pid`` and checking that the pid in it is really our postmaster.

After an Argon restart nothing in memory says which computes run: the data directory
does.  A pid file can be stale (the postmaster was killed, the pid since reused by an
unrelated process, or by a backend of another cluster), so a pid counts only when the
process is alive, is a ``postgres`` executable, its working directory is this data
directory (the postmaster chdirs there), and its parent is not itself a postgres in the
same directory (which would make it a backend, not the postmaster).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PIDFILE = "postmaster.pid"

# Line numbers (0-based) of postmaster.pid, as in Postgres' miscadmin.h.
LINE_PID, LINE_DATA_DIR, LINE_START_TIME, LINE_PORT, LINE_SOCKET_DIR = 0, 1, 2, 3, 4
LINE_LISTEN_ADDR, LINE_SHMEM_KEY, LINE_PM_STATUS = 5, 6, 7

STATUS_READY = "ready"       # accepting read-write (or, in a standby, read-only) sessions
STATUS_STANDBY = "standby"   # hot standby accepting read-only sessions


@dataclass(frozen=True)
class PidFile:
    pid: int
    data_dir: Path
    started_at: datetime
    port: int
    socket_dir: Path | None
    status: str               # "" until the postmaster has written it

    @classmethod
    def read(cls, pgdata: Path) -> PidFile | None:
        """The parsed file, or None if absent or not (yet) complete."""
        try:
            lines = (pgdata / PIDFILE).read_text().split("\n")
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return None
        try:
            return cls(
                pid=int(lines[LINE_PID]),
                data_dir=Path(lines[LINE_DATA_DIR]),
                started_at=datetime.fromtimestamp(int(lines[LINE_START_TIME]), UTC),
                port=int(lines[LINE_PORT]),
                socket_dir=Path(lines[LINE_SOCKET_DIR]) if lines[LINE_SOCKET_DIR] else None,
                status=lines[LINE_PM_STATUS].strip() if len(lines) > LINE_PM_STATUS else "",
            )
        except (IndexError, ValueError):
            return None  # being written right now, or truncated by a crash


def _proc(pid: int, name: str) -> Path:
    return Path("/proc") / str(pid) / name


def _is_postgres(pid: int) -> bool:
    try:
        argv0 = _proc(pid, "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return False
    # a postmaster keeps its argv ("/path/postgres -D ..."); children retitle themselves
    # to "postgres: ..." which splits differently, so compare the program name only
    return os.path.basename(argv0.split(" ", 1)[0]).rstrip(":") == "postgres"


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(_proc(pid, "cwd")))
    except OSError:
        return None  # gone, a zombie, or not ours to read


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) from /proc/<pid>/stat."""
    try:
        text = _proc(pid, "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def process_in(pid: int, pgdata: Path) -> bool:
    """True if ``pid`` is a live postgres process working in ``pgdata``."""
    stat = _stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    cwd = _cwd(pid)
    return cwd is not None and cwd == pgdata.resolve() and _is_postgres(pid)


def is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """True if ``pid`` is the live postmaster of ``pgdata``."""
    if pid <= 0 or not process_in(pid, pgdata):
        return False
    stat = _stat(pid)
    return stat is not None and not process_in(stat[1], pgdata)


def verified(pgdata: Path) -> PidFile | None:
    """The pid file if it names the running postmaster of ``pgdata``, else None."""
    pf = PidFile.read(pgdata)
    if pf is None or not is_postmaster_of(pf.pid, pgdata):
        return None
    return pf


def started_at(pid: int) -> datetime | None:
    """When ``pid`` started (from /proc/<pid>/stat and the boot time), or None."""
    try:
        text = _proc(pid, "stat").read_text()
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    ticks = int(text[text.rindex(")") + 2:].split()[19])
    return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), UTC)


def same_process(pid: int, pf_started: datetime) -> bool:
    """True if ``pid`` started when the pid file says its postmaster did (not a reuse).

    The file holds whole seconds written just after the process started.
    """
    start = started_at(pid)
    return start is not None and -1.0 < (pf_started - start).total_seconds() <= 1.0


def exiting_postmaster(pid: int, pgdata: Path, pf_started: datetime) -> bool:
    """The postmaster the pid file names, killed but not yet gone.

    An exiting process has released its working directory before it becomes a zombie,
    so it is either still visibly in ``pgdata`` or has no readable cwd at all.
    """
    if not alive(pid) or not same_process(pid, pf_started):
        return False
    return _cwd(pid) is None or process_in(pid, pgdata)


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (children listed by /proc/<pid>/task/*/children)."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            tasks = list(_proc(pid, "task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return out
