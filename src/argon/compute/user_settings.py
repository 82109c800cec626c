"""The Postgres settings a user may put in an endpoint's ``pg_settings``: an allow-list.

Neon lets users tune session and planner settings of a compute, never where it listens,
what it loads, which files it reads or writes, or how it archives.  Every allowed setting
carries its type and the range Postgres itself accepts (or a tighter one), so a value
that passes here always starts Postgres: a bad one is refused when it is stored, not at
the next start.  Names are matched case-insensitively and stored lower-case.

The control plane checks at the API (``check``); ``render_config`` checks again, in case
an older metadata row holds a value from before this list.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from argon.errors import InvalidInput

INT_MAX = 2_147_483_647

# Postgres's units: memory in multiples of the setting's base unit, time likewise.
MEMORY_UNITS: dict[str, float] = {"B": 1 / 1024, "kB": 1, "MB": 1024, "GB": 1024**2,
                                  "TB": 1024**3}
TIME_UNITS: dict[str, float] = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000,
                                "d": 86_400_000}
_NUMBER_WITH_UNIT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_REAL = re.compile(r"^\s*-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
_BOOLS = {"on": True, "off": False, "true": True, "false": False, "yes": True, "no": False,
          "1": True, "0": False}
_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"[^"\x00-\x1f]{1,63}"|"\$user"|\$user)'
_SEARCH_PATH = re.compile(rf"^\s*{_IDENT}(\s*,\s*{_IDENT})*\s*$|^\s*$")
_TS_CONFIG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_DATESTYLE_WORDS = {"iso", "sql", "postgres", "german", "us", "noneuropean", "mdy", "dmy",
                    "ymd", "euro", "european"}
_PRINTABLE = re.compile(r"^[\x20-\x7e]{0,63}$")


@dataclass(frozen=True)
class IntSetting:
    """An integer, optionally with a unit (``kind`` "memory" or "time")."""
    low: int
    high: int
    kind: str = ""          # "", "memory" or "time"
    base: int = 1           # the setting's unit in kB (memory) or ms (time)

    def describe(self) -> str:
        if self.kind == "memory":
            return (f"a size from {_kb(self.low * self.base)} to {_kb(self.high * self.base)} "
                    "(e.g. '64MB')")
        if self.kind == "time":
            return (f"a duration from {self.low} to {self.high} ms, with a unit such as "
                    "ms, s, min, h (e.g. '30s')")
        return f"an integer from {self.low} to {self.high}"

    def parse(self, value: str) -> float | None:
        m = _NUMBER_WITH_UNIT.match(value)
        if m is None:
            return None
        number, unit = float(m.group(1)), m.group(2)
        if not unit:
            return number
        units: Mapping[str, float] = (MEMORY_UNITS if self.kind == "memory" else
                                      TIME_UNITS if self.kind == "time" else {})
        if unit not in units:
            return None
        return number * units[unit] / self.base

    def valid(self, value: str) -> bool:
        n = self.parse(value)
        return n is not None and self.low <= round(n) <= self.high


@dataclass(frozen=True)
class RealSetting:
    low: float
    high: float

    def describe(self) -> str:
        return f"a number from {self.low:g} to {self.high:g}"

    def valid(self, value: str) -> bool:
        return bool(_REAL.match(value)) and self.low <= float(value) <= self.high


@dataclass(frozen=True)
class BoolSetting:
    def describe(self) -> str:
        return "on or off"

    def valid(self, value: str) -> bool:
        return value.strip().lower() in _BOOLS


@dataclass(frozen=True)
class EnumSetting:
    values: tuple[str, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def valid(self, value: str) -> bool:
        return value.strip().lower() in self.values


@dataclass(frozen=True)
class TextSetting:
    """Free text checked by a function; ``what`` says what is expected."""
    what: str
    check: str              # name of a checker in _TEXT_CHECKS

    def describe(self) -> str:
        return self.what

    def valid(self, value: str) -> bool:
        return _TEXT_CHECKS[self.check](value)


Setting = IntSetting | RealSetting | BoolSetting | EnumSetting | TextSetting


def _kb(kb: int) -> str:
    for unit, size in (("TB", 1024**3), ("GB", 1024**2), ("MB", 1024)):
        if kb >= size and kb % size == 0:
            return f"{kb // size}{unit}"
    return f"{kb}kB"


def _timezone(value: str) -> bool:
    name = value.strip()
    if name.upper() in ("UTC", "GMT"):
        return True
    if not re.fullmatch(r"[A-Za-z0-9_+\-/]{1,64}", name) or ".." in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _datestyle(value: str) -> bool:
    words = [w.strip().lower() for w in value.split(",")]
    return 1 <= len(words) <= 2 and all(w in _DATESTYLE_WORDS for w in words)


_TEXT_CHECKS: dict[str, Callable[[str], bool]] = {
    "timezone": _timezone,
    "datestyle": _datestyle,
    "search_path": lambda v: len(v) <= 1024 and bool(_SEARCH_PATH.match(v)),
    "ts_config": lambda v: bool(_TS_CONFIG.match(v.strip())),
    "printable": lambda v: bool(_PRINTABLE.match(v)),
}

_MS = IntSetting(0, INT_MAX, "time")
_COST = RealSetting(0, 1e10)
_LOG_LEVELS = ("debug5", "debug4", "debug3", "debug2", "debug1", "log", "notice", "warning",
               "error")

ALLOWED: dict[str, Setting] = {
    # memory (work_mem and maintenance_work_mem also have sized defaults, see config.py)
    "work_mem": IntSetting(64, INT_MAX, "memory"),
    "maintenance_work_mem": IntSetting(1024, INT_MAX, "memory"),
    "temp_buffers": IntSetting(100, 1_073_741_823, "memory", base=8),
    "hash_mem_multiplier": RealSetting(1, 1000),
    # timeouts
    "statement_timeout": _MS,
    "lock_timeout": _MS,
    "idle_in_transaction_session_timeout": _MS,
    "idle_session_timeout": _MS,
    "deadlock_timeout": IntSetting(1, INT_MAX, "time"),
    # planner
    "default_statistics_target": IntSetting(1, 10_000),
    "random_page_cost": _COST,
    "seq_page_cost": _COST,
    "cpu_tuple_cost": _COST,
    "cpu_index_tuple_cost": _COST,
    "cpu_operator_cost": _COST,
    "parallel_setup_cost": _COST,
    "parallel_tuple_cost": _COST,
    "effective_io_concurrency": IntSetting(0, 1000),
    "max_parallel_workers_per_gather": IntSetting(0, 1024),
    "max_parallel_maintenance_workers": IntSetting(0, 1024),
    "from_collapse_limit": IntSetting(1, INT_MAX),
    "join_collapse_limit": IntSetting(1, INT_MAX),
    "plan_cache_mode": EnumSetting(("auto", "force_generic_plan", "force_custom_plan")),
    "constraint_exclusion": EnumSetting(("partition", "on", "off")),
    "jit": BoolSetting(),
    "jit_above_cost": RealSetting(-1, 1e10),
    "jit_inline_above_cost": RealSetting(-1, 1e10),
    "jit_optimize_above_cost": RealSetting(-1, 1e10),
    **{f"enable_{n}": BoolSetting() for n in (
        "bitmapscan", "hashagg", "hashjoin", "indexonlyscan", "indexscan", "material",
        "mergejoin", "nestloop", "parallel_append", "parallel_hash", "partition_pruning",
        "partitionwise_aggregate", "partitionwise_join", "seqscan", "sort", "tidscan")},
    # logging of statements
    "log_min_duration_statement": IntSetting(-1, INT_MAX, "time"),
    "log_statement": EnumSetting(("none", "ddl", "mod", "all")),
    "log_lock_waits": BoolSetting(),
    "log_temp_files": IntSetting(-1, INT_MAX, "memory"),
    "log_min_messages": EnumSetting((*_LOG_LEVELS, "fatal", "panic")),
    "client_min_messages": EnumSetting(_LOG_LEVELS),
    "track_io_timing": BoolSetting(),
    # client defaults
    "timezone": TextSetting("a time zone name such as 'UTC' or 'Europe/Paris'", "timezone"),
    "datestyle": TextSetting("an output format and/or an order, e.g. 'ISO, MDY'", "datestyle"),
    "intervalstyle": EnumSetting(("postgres", "postgres_verbose", "sql_standard", "iso_8601")),
    "search_path": TextSetting("a comma-separated list of schema names, e.g. '\"$user\", "
                               "public'", "search_path"),
    "default_text_search_config": TextSetting("a text search configuration, e.g. "
                                              "'pg_catalog.english'", "ts_config"),
    "application_name": TextSetting("printable text of at most 63 characters", "printable"),
    "default_transaction_isolation": EnumSetting(("serializable", "repeatable read",
                                                  "read committed", "read uncommitted")),
    "default_transaction_read_only": BoolSetting(),
    "default_transaction_deferrable": BoolSetting(),
    "synchronous_commit": EnumSetting(("on", "off", "local", "remote_write", "remote_apply")),
    "bytea_output": EnumSetting(("hex", "escape")),
    "xmloption": EnumSetting(("content", "document")),
    "extra_float_digits": IntSetting(-15, 3),
    "row_security": BoolSetting(),
    "check_function_bodies": BoolSetting(),
    "standard_conforming_strings": BoolSetting(),
    "gin_fuzzy_search_limit": IntSetting(0, INT_MAX),
}


def check_one(name: str, value: str) -> str:
    """The lower-cased name of an allowed setting whose value is valid; else InvalidInput
    naming the setting and what it accepts."""
    key = name.lower()
    rule = ALLOWED.get(key)
    if rule is None:
        raise InvalidInput(
            f"pg_settings: {name!r} cannot be set per endpoint; the settings you may set are "
            + ", ".join(sorted(ALLOWED)))
    if not isinstance(value, str) or re.search(r"[\x00-\x1f\x7f]", value):
        raise InvalidInput(f"pg_settings: {name!r} must be a string without control characters")
    if not rule.valid(value):
        raise InvalidInput(f"pg_settings: {name!r} must be {rule.describe()}, not {value!r}")
    return key


def check(settings: Mapping[str, str]) -> dict[str, str]:
    """Validate every setting; returns them with lower-case names."""
    return {check_one(name, value): value for name, value in settings.items()}
