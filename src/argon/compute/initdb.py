"""Creating a fresh data directory with initdb, as the Postgres account."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from argon.compute.errors import ComputeError
from argon.compute.process import child_env
from argon.errors import Conflict
from argon.pg import OsUser, PgInstall

logger = logging.getLogger(__name__)

SUPERUSER = "cloud_admin"


def initdb(install: PgInstall, pgdata: Path, owner: OsUser) -> None:
    """initdb ``pgdata`` (absent or empty): superuser cloud_admin, UTF8, C.UTF-8.

    initdb's final fsync is kept: it costs ~0.1 s here and a project's first data
    directory is the root every branch is cloned from.
    """
    if pgdata.exists() and any(pgdata.iterdir()):
        raise Conflict(f"{pgdata} is not empty; initdb needs an empty or absent directory")
    pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
    pgdata.chmod(0o700)
    owner.chown(pgdata)
    cmd = [install.bin("initdb"), "-D", str(pgdata), "-U", SUPERUSER, "-E", "UTF8",
           "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256",
           "--no-instructions",
           # 1 MiB WAL segments instead of 16: branching copies the segments between
           # backup start and stop, and a new timeline starts a fresh segment, so small
           # segments keep a new branch's footprint near zero on reflink storage.
           "--wal-segsize=1"]
    result = subprocess.run(  # type: ignore[call-overload]
        cmd, capture_output=True, text=True, env=child_env(), stdin=subprocess.DEVNULL,
        **owner.popen_kwargs())
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()[-2000:]
        raise ComputeError(f"initdb of {pgdata} failed (exit {result.returncode}): {detail}; "
                           f"check that account {owner.name!r} can write there")
    logger.info("initdb %s with PostgreSQL %s", pgdata, install.full_version)
