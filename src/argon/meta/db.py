"""Opening the metadata database and bringing its schema up to date."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from argon.errors import InvalidInput, Unavailable

MIGRATIONS = Path(__file__).parent / "migrations"
# Plain libpq-style schemes users copy from their provider, and SQLAlchemy's own;
# all of them are served by psycopg 3 (already Argon's Postgres driver).
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer; synchronous=FULL: a committed operation
    # survives a power cut, which the crash-repair logic relies on.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def engine_url(url: str) -> str:
    """``url`` as SQLAlchemy should open it: ``postgres://`` and ``postgresql://`` become
    ``postgresql+psycopg://``; SQLite URLs stay as they are; anything else is refused."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        # not echoed: a libpq keyword string may carry a password
        raise InvalidInput("the metadata URL is not a URL; use "
                           "postgresql://user:password@host:port/dbname")
    if scheme in POSTGRES_SCHEMES:
        return f"postgresql+psycopg://{rest}"
    if scheme.startswith("sqlite"):
        return url
    raise InvalidInput(f"metadata URL scheme {scheme!r} is not supported; use "
                       "postgresql://... (or sqlite:///path)")


def describe_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(engine_url(url)).render_as_string(hide_password=True).replace(
            "postgresql+psycopg://", "postgresql://")
    except (ArgumentError, InvalidInput, ValueError):
        return url.split("://", 1)[0] + "://..." if "://" in url else "(not a URL)"


def open_database(url: str) -> Engine:
    """An engine on ``url`` with the schema migrated to the newest revision."""
    full = engine_url(url)
    # TCP keepalive: a metadata host that vanishes without closing its socket is noticed
    # in about 25 s, by this Argon and by the server (which then frees that session's locks)
    extra = {"connect_args": {"keepalives_idle": 10, "keepalives_interval": 5,
                              "keepalives_count": 3}} if full.startswith("postgresql") else {}
    try:
        engine = create_engine(full, future=True, pool_pre_ping=True, **extra)
    except ArgumentError as exc:
        raise InvalidInput(f"metadata URL {describe_url(url)} is not valid: {exc}") from None
    if engine.dialect.name == "sqlite":
        _create_private(engine.url.database)
        event.listen(engine, "connect", _sqlite_pragmas)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        engine.dispose()
        raise Unavailable(unreachable_message(url, exc)) from None
    return engine


def unreachable_message(url: str, exc: OperationalError) -> str:
    """What to check when the metadata database cannot be opened (the driver's first
    line says why: refused, unknown host, bad password, no such database)."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    if make_url(engine_url(url)).get_backend_name() == "sqlite":
        return f"cannot open the metadata database {describe_url(url)}: {reason}"
    return (f"cannot reach the metadata database {describe_url(url)}: {reason}. Check that "
            "Postgres runs and listens at that host and port, that the role and password "
            "are right (pg_hba.conf allows this host) and that the database exists")


def _create_private(database: str | None) -> None:
    """Create the SQLite file 0600 before SQLite does: it holds role verifiers and API key
    digests, and SQLite gives its -wal and -shm files the database file's mode."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.close(fd)
    os.chmod(database, 0o600)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"
