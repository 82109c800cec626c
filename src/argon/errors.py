"""The root of Argon's exception tree.

Every room raises subclasses of ``ArgonError``.  Interfaces (HTTP, CLI, MCP) map them to
user-facing answers in one place each; ``code`` and ``status`` follow Neon's API errors.
"""

from __future__ import annotations

import errno


class ArgonError(Exception):
    """Base of every error Argon raises on purpose."""

    code = "INTERNAL_ERROR"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ArgonError):
    code = "BAD_REQUEST"
    status = 400


class NotFound(ArgonError):
    code = "NOT_FOUND"
    status = 404


class Conflict(ArgonError):
    code = "CONFLICT"
    status = 409


class EndpointDisabled(Conflict):
    """The endpoint is disabled: connections are refused until it is enabled again."""


class Locked(ArgonError):
    """A running operation holds the object; Neon clients retry on 423."""

    code = "LOCKED"
    status = 423


class Unauthorized(ArgonError):
    code = "UNAUTHORIZED"
    status = 401


class Forbidden(ArgonError):
    """Authenticated, but the key's scope does not allow it (a project-scoped key)."""

    code = "FORBIDDEN"
    status = 403


class Unavailable(ArgonError):
    """A needed resource (binaries, a driver, a port) is missing on this host."""

    code = "UNAVAILABLE"
    status = 503


class InsufficientStorage(ArgonError):
    """The home's filesystem lacks the space an operation needs (HTTP 507, as WebDAV
    defines it: the request may succeed once space is freed, so clients may retry)."""

    code = "INSUFFICIENT_STORAGE"
    status = 507


_SQLITE_FULL = 13
_DISK_FULL_SQLSTATE = "53100"


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything it was raised from) means "no space left": ENOSPC or
    EDQUOT from the OS, SQLite's SQLITE_FULL, or Postgres's SQLSTATE 53100."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, InsufficientStorage):
            return True
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        code = getattr(current, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF == _SQLITE_FULL:
            return True
        if getattr(current, "sqlstate", None) == _DISK_FULL_SQLSTATE:
            return True
        orig = getattr(current, "orig", None)   # SQLAlchemy keeps the driver's error here
        current = (current.__cause__ or current.__context__
                   or (orig if isinstance(orig, BaseException) else None))
    return False
