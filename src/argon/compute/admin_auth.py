"""Whether a data directory's ``cloud_admin`` has Argon's password yet, and setting it.

Data directories made before computes required passwords have a ``cloud_admin`` without
one.  The first start of such a compute (see ``ComputeManager.start``) runs with a
bootstrap pg_hba.conf that trusts only cloud_admin on the private 0700 socket, sets the
password, records it here, then switches to the final file.  Each step is safe to redo,
so a crash at any moment leaves either the marker (password set, final file written at
the next start or at once when the compute is found running) or no marker (the whole
upgrade runs again).

The marker holds a fingerprint of the password, not the password: a data directory
copied into another project, or a changed master key, no longer matches and is upgraded
again.  The marker travels with the data directory (branches and restores copy it),
just as ``pg_authid`` does.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import psycopg
from psycopg import sql

from argon.compute.config import SUPERUSER, atomic_write
from argon.compute.spec import ComputeSpec
from argon.pg import OsUser
from argon.pg.scram import make_verifier

MARKER = "argon.admin_auth"


def fingerprint(password: str) -> str:
    return hashlib.sha256(b"argon admin auth marker\0" + password.encode()).hexdigest()


def is_set(pgdata: Path, spec: ComputeSpec) -> bool:
    """True once cloud_admin's password in ``pgdata`` is ``spec.admin_password``."""
    try:
        text = (pgdata / MARKER).read_text().strip()
    except OSError:
        return False
    return text == fingerprint(spec.admin_password)


def mark_set(pgdata: Path, spec: ComputeSpec, owner: OsUser) -> None:
    atomic_write(pgdata / MARKER, fingerprint(spec.admin_password) + "\n", owner)


def forget(pgdata: Path) -> None:
    """The marker lied (the role's password differs): the next start upgrades again."""
    try:
        os.unlink(pgdata / MARKER)
    except FileNotFoundError:
        pass


def set_password(conn: psycopg.Connection, password: str) -> None:
    """``ALTER ROLE cloud_admin PASSWORD <verifier>``: only the SCRAM verifier reaches
    the server (and its logs), never the password.  Works on time-travel computes too,
    whose sessions default to read-only."""
    verifier = str(make_verifier(password))
    conn.execute("SET default_transaction_read_only = off")
    conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN SUPERUSER PASSWORD {}").format(
        sql.Identifier(SUPERUSER), sql.Literal(verifier)))
