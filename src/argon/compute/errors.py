"""The compute room's errors: a start that failed, a process that would not stop."""

from __future__ import annotations

from argon.errors import ArgonError, InvalidInput


class ComputeError(ArgonError):
    """A Postgres or PgBouncer process did not do what was asked of it."""


class ComputeStartFailed(ComputeError):
    """The process exited or did not become ready; the message carries its log tail."""


class InvalidComputeSetting(InvalidInput):
    """Postgres refused a setting from the endpoint's ``pg_settings``."""
