"""SQL the control plane runs inside a compute: bootstrap, roles, databases.

Identifiers are always quoted with psycopg.sql; passwords are sent as SCRAM verifiers
so the plaintext never reaches a Postgres log.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from argon.errors import Conflict, InvalidInput, NotFound

SUPERUSER_GROUP = "neon_superuser"
# Roles the platform owns; never listed to users or changed through the API.
SYSTEM_ROLES = frozenset({"cloud_admin", SUPERUSER_GROUP})


def bootstrap(conn: psycopg.Connection, pg_major: int, owner: str, verifier: str,
              database: str) -> None:
    """Neon's layout: a neon_superuser group, the owner role in it, the default database."""
    bootstrap_roles(conn, pg_major, owner, verifier)
    create_database(conn, database, owner)


def bootstrap_roles(conn: psycopg.Connection, pg_major: int, owner: str,
                    verifier: str) -> None:
    """The neon_superuser group and the owner role in it."""
    grants = ["pg_read_all_data", "pg_write_all_data", "pg_monitor", "pg_signal_backend",
              "pg_checkpoint"]  # pg_checkpoint exists from 15, our oldest supported major
    if pg_major >= 16:
        grants.append("pg_create_subscription")
    conn.execute(sql.SQL(
        "CREATE ROLE {} NOLOGIN CREATEDB CREATEROLE REPLICATION BYPASSRLS IN ROLE {}").format(
        sql.Identifier(SUPERUSER_GROUP), sql.SQL(", ").join(map(sql.Identifier, grants))))
    create_role(conn, owner, verifier)


def create_role(conn: psycopg.Connection, name: str, verifier: str | None,
                login: bool = True) -> None:
    # REPLICATION on the role itself, as Neon's roles made through the API have it: role
    # attributes are not inherited from neon_superuser, and a walsender (an external
    # subscriber, pg_create_logical_replication_slot) checks the login role's own.
    try:
        conn.execute(sql.SQL("CREATE ROLE {} {} CREATEDB CREATEROLE REPLICATION IN ROLE {} "
                             "PASSWORD {}").format(
            sql.Identifier(name), sql.SQL("LOGIN" if login else "NOLOGIN"),
            sql.Identifier(SUPERUSER_GROUP), sql.Literal(verifier)))
    except psycopg.errors.DuplicateObject:
        raise Conflict(f"role {name!r} already exists") from None


def grant_replication(conn: psycopg.Connection, names: list[str]) -> None:
    """REPLICATION for roles made through the API before they got it at creation."""
    for name in names:
        conn.execute(sql.SQL("ALTER ROLE {} REPLICATION").format(sql.Identifier(name)))


def set_password(conn: psycopg.Connection, name: str, verifier: str) -> None:
    conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
        sql.Identifier(name), sql.Literal(verifier)))


def drop_role(conn: psycopg.Connection, name: str) -> None:
    owned = conn.execute("SELECT datname FROM pg_database d JOIN pg_roles r "
                         "ON r.oid = d.datdba WHERE r.rolname = %s", (name,)).fetchall()
    if owned:
        names = ", ".join(r[0] for r in owned)
        raise Conflict(f"role {name!r} owns database(s) {names}; delete or reassign them first")
    try:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    except psycopg.errors.UndefinedObject:
        raise NotFound(f"role {name!r} not found") from None
    except psycopg.errors.DependentObjectsStillExist as exc:
        raise Conflict(f"role {name!r} still owns objects: {exc.diag.message_detail}") from None


def create_database(conn: psycopg.Connection, name: str, owner: str) -> None:
    try:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(owner)))
    except psycopg.errors.DuplicateDatabase:
        raise Conflict(f"database {name!r} already exists") from None
    except psycopg.errors.UndefinedObject:
        raise InvalidInput(f"owner role {owner!r} does not exist on this branch") from None


def alter_database(conn: psycopg.Connection, name: str, new_name: str | None,
                   new_owner: str | None) -> None:
    try:
        if new_owner:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(name), sql.Identifier(new_owner)))
        if new_name and new_name != name:
            _terminate(conn, name)
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(name), sql.Identifier(new_name)))
    except psycopg.errors.DuplicateDatabase:
        raise Conflict(f"database {new_name!r} already exists") from None
    except psycopg.errors.UndefinedObject:
        raise InvalidInput(f"owner role {new_owner!r} does not exist on this branch") from None


def drop_database(conn: psycopg.Connection, name: str) -> None:
    try:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    except psycopg.errors.InvalidCatalogName:
        raise NotFound(f"database {name!r} not found") from None


def _terminate(conn: psycopg.Connection, dbname: str) -> None:
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,))


def list_roles(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' "
                        "ORDER BY rolname").fetchall()
    return [r[0] for r in rows if r[0] not in SYSTEM_ROLES]


def list_databases(conn: psycopg.Connection) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT d.datname, r.rolname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba "
        "WHERE d.datallowconn AND NOT d.datistemplate AND d.datname <> 'postgres' "
        "ORDER BY d.datname").fetchall()
    return [(r[0], r[1]) for r in rows]
