"""Creating a fresh data directory with initdb, as the Postgres account."""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from pathlib import Path

from argon.compute.admin_auth import MARKER, fingerprint
from argon.compute.errors import ComputeError
from argon.compute.process import child_env
from argon.errors import Conflict
from argon.pg import OsUser, PgInstall

logger = logging.getLogger(__name__)

SUPERUSER = "cloud_admin"


def initdb(install: PgInstall, pgdata: Path, owner: OsUser, admin_password: str = "") -> None:
    """initdb ``pgdata`` (absent or empty): superuser cloud_admin, UTF8, C.UTF-8.

    ``admin_password`` becomes cloud_admin's password (initdb reads it from a file in a
    private temporary directory, removed at once); without it the first start of a
    compute sets it (see ``admin_auth``).

    initdb's final fsync is kept: it costs ~0.1 s here and a project's first data
    directory is the root every branch is cloned from.
    """
    if pgdata.exists() and any(pgdata.iterdir()):
        raise Conflict(f"{pgdata} is not empty; initdb needs an empty or absent directory")
    pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
    pgdata.chmod(0o700)
    owner.chown(pgdata)
    cmd = [install.bin("initdb"), "-D", str(pgdata), "-U", SUPERUSER, "-E", "UTF8",
           "--locale=C.UTF-8", "--auth-host=scram-sha-256", "--no-instructions",
           # initdb refuses password auth without a password; pg_hba.conf is rewritten
           # (no trust line) before the first start either way
           *(["--auth-local=scram-sha-256"] if admin_password else ["--auth-local=trust"]),
           # 1 MiB WAL segments instead of 16: branching copies the segments between
           # backup start and stop, and a new timeline starts a fresh segment, so small
           # segments keep a new branch's footprint near zero on reflink storage.
           "--wal-segsize=1"]
    with tempfile.TemporaryDirectory(prefix="argon-initdb-") as tmp:
        if admin_password:
            # initdb runs as the Postgres account and cannot read a pipe of ours
            owner.chown(Path(tmp))
            pwfile = Path(tmp) / "pwfile"
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(admin_password + "\n")
            owner.chown(pwfile)
            cmd.append(f"--pwfile={pwfile}")
        result = subprocess.run(  # type: ignore[call-overload]
            cmd, capture_output=True, text=True, env=child_env(), stdin=subprocess.DEVNULL,
            **owner.popen_kwargs())
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()[-2000:]
        raise ComputeError(f"initdb of {pgdata} failed (exit {result.returncode}): {detail}; "
                           f"check that account {owner.name!r} can write there")
    if admin_password:
        (pgdata / MARKER).write_text(fingerprint(admin_password) + "\n")
        (pgdata / MARKER).chmod(0o600)
        owner.chown(pgdata / MARKER)
    logger.info("initdb %s with PostgreSQL %s", pgdata, install.full_version)
