"""Checks on user input, shared by every service so every interface answers alike."""

from __future__ import annotations

import re
from typing import Any

from argon.compute import user_settings
from argon.errors import InvalidInput

MAX_RETENTION = 2_592_000            # 30 days, Neon's maximum
MAX_SUSPEND_TIMEOUT = 604_800        # one week
CU_MIN, CU_MAX = 0.25, 16.0
_PG_IDENT_MAX = 63
_BRANCH_NAME_MAX = 256
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def name(value: str, what: str, max_len: int = _BRANCH_NAME_MAX) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string")
    if len(value) > max_len:
        raise InvalidInput(f"{what} is longer than {max_len} characters")
    if _CONTROL_CHARS.search(value):
        raise InvalidInput(f"{what} must not contain control characters")
    return value


def pg_identifier(value: str, what: str) -> str:
    """Database and role names: Postgres identifiers (quoted by us, so any printable text)."""
    name(value, what, _PG_IDENT_MAX)
    if len(value.encode()) > _PG_IDENT_MAX:
        raise InvalidInput(f"{what} is longer than {_PG_IDENT_MAX} bytes")
    if value.startswith("pg_"):
        raise InvalidInput(f"{what} must not start with 'pg_' (reserved by Postgres)")
    return value


def retention(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETENTION:
        raise InvalidInput(
            f"history_retention_seconds must be an integer from 0 to {MAX_RETENTION}")
    return value


def suspend_timeout(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (
            value == -1 or 0 <= value <= MAX_SUSPEND_TIMEOUT):
        raise InvalidInput(
            f"suspend_timeout_seconds must be -1 (never), 0 (default) or 1..{MAX_SUSPEND_TIMEOUT}")
    return value


def cu_range(min_cu: float, max_cu: float) -> tuple[float, float]:
    for label, v in (("autoscaling_limit_min_cu", min_cu), ("autoscaling_limit_max_cu", max_cu)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not CU_MIN <= v <= CU_MAX:
            raise InvalidInput(f"{label} must be between {CU_MIN} and {CU_MAX}")
        if (v * 4) != int(v * 4):
            raise InvalidInput(f"{label} must be a multiple of 0.25")
    if min_cu > max_cu:
        raise InvalidInput("autoscaling_limit_min_cu must not exceed autoscaling_limit_max_cu")
    return float(min_cu), float(max_cu)


def pg_settings(values: dict[str, str]) -> dict[str, str]:
    """An endpoint's ``pg_settings``: only the allow-listed settings, each in its range
    (see ``argon.compute.user_settings``), so nothing stored can break a later start."""
    if not isinstance(values, dict):
        raise InvalidInput("pg_settings must be an object of setting names to string values")
    out: dict[str, str] = {}
    for key, val in values.items():
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            raise InvalidInput(f"pg_settings: value of {key!r} must be a string")
        out[user_settings.check_one(str(key), str(val))] = str(val)
    return out


# Neon's ProjectAuditLogLevel enum (public API v2 spec).
AUDIT_LOG_LEVELS = ("base", "extended", "full")


def project_settings(values: dict[str, Any]) -> dict[str, Any]:
    """Project ``settings`` fields Argon stores but does not act on must still hold values
    Neon's schema allows, or every later answer that shows them breaks Neon's clients."""
    if not isinstance(values, dict):
        raise InvalidInput("settings must be an object")
    level = values.get("audit_log_level")
    if level is not None and level not in AUDIT_LOG_LEVELS:
        raise InvalidInput(f"settings.audit_log_level must be one of "
                           f"{', '.join(AUDIT_LOG_LEVELS)}, not {level!r}")
    return values
