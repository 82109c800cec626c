"""Verifiers of login roles created with SQL, kept in the metadata.

A role made with ``CREATE ROLE ... LOGIN PASSWORD`` exists only inside the branch's
Postgres.  The proxy must authenticate it without starting the compute, so its SCRAM
verifier is copied out while the compute runs: before it suspends and by the
reconciler's periodic sync.  These rows are a cache of ``pg_authid``, not roles Argon
manages: they never appear in the role listing.
"""

from __future__ import annotations

from datetime import datetime

import psycopg
from sqlalchemy import Connection, delete, select

from argon.control.sqlexec import SYSTEM_ROLES
from argon.meta import tables as t

# Superusers and Argon's own roles never log in through the proxy.
_LOGIN_SECRETS = ("SELECT rolname, rolpassword FROM pg_authid WHERE rolcanlogin AND NOT "
                  "rolsuper AND rolname !~ '^pg_' AND rolpassword LIKE 'SCRAM-SHA-256$%%' "
                  "AND (rolvaliduntil IS NULL OR rolvaliduntil > now())")


def read_login_secrets(pg: psycopg.Connection) -> dict[str, str]:
    """``{role: verifier}`` of every role that can log in with a SCRAM password."""
    rows = pg.execute(_LOGIN_SECRETS).fetchall()
    return {str(name): str(secret) for name, secret in rows if name not in SYSTEM_ROLES}


def one_login_secret(pg: psycopg.Connection, role: str) -> str | None:
    """One role's verifier (a running compute answers for a role not synced yet)."""
    if role in SYSTEM_ROLES:
        return None
    row = pg.execute(_LOGIN_SECRETS + " AND rolname = %s", (role,)).fetchone()
    return str(row[1]) if row else None


def store(conn: Connection, branch_id: str, secrets: dict[str, str], now: datetime) -> bool:
    """Make the branch's rows equal ``secrets``; True when anything changed."""
    have = dict(conn.execute(select(t.sql_role_secrets.c.name, t.sql_role_secrets.c.verifier)
                             .where(t.sql_role_secrets.c.branch_id == branch_id)).all())
    if have == secrets:
        return False
    stale = [n for n, v in have.items() if secrets.get(n) != v]
    if stale:
        conn.execute(delete(t.sql_role_secrets).where(
            t.sql_role_secrets.c.branch_id == branch_id, t.sql_role_secrets.c.name.in_(stale)))
    fresh = [{"branch_id": branch_id, "name": n, "verifier": v, "synced_at": now}
             for n, v in secrets.items() if have.get(n) != v]
    if fresh:
        conn.execute(t.sql_role_secrets.insert(), fresh)
    return True


def lookup(conn: Connection, branch_id: str, role: str) -> str | None:
    return conn.execute(select(t.sql_role_secrets.c.verifier).where(
        t.sql_role_secrets.c.branch_id == branch_id,
        t.sql_role_secrets.c.name == role)).scalar()


def copy(conn: Connection, parent_id: str, child_id: str, now: datetime) -> None:
    """A new (or restored) branch starts with its parent's data, so with its SQL roles."""
    conn.execute(delete(t.sql_role_secrets).where(t.sql_role_secrets.c.branch_id == child_id))
    rows = conn.execute(select(t.sql_role_secrets).where(
        t.sql_role_secrets.c.branch_id == parent_id)).all()
    if rows:
        conn.execute(t.sql_role_secrets.insert(), [
            {"branch_id": child_id, "name": r.name, "verifier": r.verifier, "synced_at": now}
            for r in rows])
