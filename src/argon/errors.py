"""The root of Argon's exception tree.

Every room raises subclasses of ``ArgonError``.  Interfaces (HTTP, CLI, MCP) map them to
user-facing answers in one place each; ``code`` and ``status`` follow Neon's API errors.
"""

from __future__ import annotations


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


class Locked(ArgonError):
    """A running operation holds the object; Neon clients retry on 423."""

    code = "LOCKED"
    status = 423


class Unauthorized(ArgonError):
    code = "UNAUTHORIZED"
    status = 401


class Unavailable(ArgonError):
    """A needed resource (binaries, a driver, a port) is missing on this host."""

    code = "UNAVAILABLE"
    status = 503
