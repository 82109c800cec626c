"""postgresql.conf and pg_hba.conf for a compute, rendered as pure functions of the spec.

Layout of the rendered postgresql.conf, in the order Postgres reads it (later wins):

1. ``include_if_exists = 'postgresql.base.conf'``: what initdb wrote (locale, time zone,
   text search config), moved aside at the first start.
2. Settings sized from ``cu_max`` (see ``MEMORY_TABLE``), overridden by the endpoint's
   ``pg_settings`` (users may tune ``work_mem`` and friends).
3. ``ENFORCED``: network, logging and WAL settings Argon depends on; user settings may
   not touch them (nor the keys storage owns).
4. ``include_if_exists = 'argon.storage.conf'`` last, so storage's archive and
   recovery settings win.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from argon.compute import pgext, replication, user_settings
from argon.compute.placement import Placement
from argon.compute.spec import ComputeMode, ComputeSpec
from argon.errors import InvalidInput
from argon.pg import OsUser

HEADER = "# managed by Argon: rewritten at every start, do not edit (use endpoint settings)"
SUPERUSER = "cloud_admin"
BASE_CONF = "postgresql.base.conf"
STORAGE_CONF = "argon.storage.conf"

MIB = 1024 * 1024


@dataclass(frozen=True)
class MemoryRow:
    cu: float
    shared_buffers_mb: int
    effective_cache_size_mb: int
    work_mem_mb: int
    maintenance_work_mem_mb: int
    max_connections: int


# Neon-like sizing: 1 CU ~ 1 vCPU and 4 GiB of RAM.  shared_buffers ~ 1/8 of RAM (the
# OS page cache does the rest and many endpoints share one host), effective_cache_size
# ~ 3/4 of RAM, max_connections follows Neon's published table (~450 per CU, capped at
# 4000).  A spec uses the largest row whose CU does not exceed ``cu_max``, because a
# process cannot be resized while it runs: the ceiling is what it may grow into.
MEMORY_TABLE: tuple[MemoryRow, ...] = (
    #          CU   shared_buffers  eff_cache  work_mem  maint_work_mem  max_connections
    MemoryRow(0.25,  128,            768,       4,        64,             112),
    MemoryRow(0.5,   256,            1536,      4,        128,            225),
    MemoryRow(1,     512,            3072,      8,        256,            450),
    MemoryRow(2,     1024,           6144,      16,       512,            901),
    MemoryRow(4,     2048,           12288,     32,       1024,           1802),
    MemoryRow(8,     4096,           24576,     64,       2048,           3604),
    MemoryRow(16,    8192,           49152,     128,      2048,           4000),
)

# Keys storage writes in argon.storage.conf, and recovery keys: never per endpoint.
STORAGE_KEYS = re.compile(r"^(archive_.*|restore_command|recovery_.*|basic_archive\..*|"
                          r"primary_conninfo|primary_slot_name|promote_trigger_file)$")

# Facts that differ per Postgres major version, as data (not scattered ifs).
# allow_alter_system (17+): postgresql.auto.conf is read after this file and would
# silently override enforced settings.
VERSION_SETTINGS: dict[int, dict[str, str]] = {
    17: {"allow_alter_system": "off"},
}


def _version_settings(major: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for since in sorted(VERSION_SETTINGS):
        if major >= since:
            out.update(VERSION_SETTINGS[since])
    return out


def memory_settings(cu_max: float) -> dict[str, str]:
    """Memory and connection settings for a compute of at most ``cu_max`` CU."""
    if cu_max < MEMORY_TABLE[0].cu:
        raise InvalidInput(f"autoscaling_limit_max_cu must be at least {MEMORY_TABLE[0].cu}"
                           f" (got {cu_max})")
    row = [r for r in MEMORY_TABLE if r.cu <= cu_max][-1]
    return {
        "shared_buffers": f"{row.shared_buffers_mb}MB",
        "effective_cache_size": f"{row.effective_cache_size_mb}MB",
        "work_mem": f"{row.work_mem_mb}MB",
        "maintenance_work_mem": f"{row.maintenance_work_mem_mb}MB",
        "max_connections": str(row.max_connections),
    }


def enforced_settings(spec: ComputeSpec, at: Placement) -> dict[str, str]:
    """What Argon relies on: a compute listens on its private socket only."""
    out = {
        "cluster_name": spec.endpoint_id,          # shows in ps; names the endpoint in logs
        # no TCP at all: the proxy (unix socket) is the only door, so the proxy's checks
        # (IP allow lists, rate limits) cannot be bypassed from this host's loopback
        "listen_addresses": "",
        "port": str(spec.port),
        "unix_socket_directories": str(at.socket_dir),
        "unix_socket_permissions": "0700",
        "hba_file": str(at.pgdata / "pg_hba.conf"),
        "password_encryption": "scram-sha-256",
        "logging_collector": "off",                # stderr goes to at.log_path
        "log_destination": "stderr",
        "log_line_prefix": "%m [%p] %q%u@%d ",
        "wal_level": replication.wal_level(spec),  # replica: archive and backup API need it
        "hot_standby": "on",
        "huge_pages": "off",                       # predictable memory, no fallback probe
        # a start after a crash or from a clone flushes the data directory first: one
        # syncfs per filesystem instead of an fsync per file (same guarantee on Linux
        # 5.8+, which reports syncfs errors; ~100 ms less per branch start)
        "recovery_init_sync_method": "syncfs",
    }
    out.update(pgext.preload_settings(spec.install))  # pg_stat_statements, argon.so
    out.update(replication.sender_settings(spec))      # senders, slots and their limits
    out.update(_version_settings(spec.install.version))
    out.update(MODE_SETTINGS[spec.mode])
    return out


# What each compute mode adds (the replica's recovery settings live in storage's file).
MODE_SETTINGS: dict[ComputeMode, dict[str, str]] = {
    ComputeMode.PRIMARY: {},
    ComputeMode.REPLICA: {
        # the primary keeps the rows a running replica query still reads (as Neon's)
        "hot_standby_feedback": "on",
        # replay position reported every second: the primary's replay_lag stays fresh
        "wal_receiver_status_interval": "1s",
        # a lost primary (suspended, killed) is noticed and retried within seconds
        "wal_receiver_timeout": "10s",
        "wal_retrieve_retry_interval": "1s",
    },
    # a throwaway clone at a past point: sessions start read-only
    ComputeMode.STATIC: {"default_transaction_read_only": "on"},
}

# A hot standby must have at least its primary's values of these (Postgres refuses to
# run one with less; see "Hot Standby" > "Administrator's Overview").
STANDBY_MINIMUM_KEYS = ("max_connections", "max_prepared_transactions",
                        "max_locks_per_transaction", "max_worker_processes")


def primary_minimums(primary: ComputeSpec) -> dict[str, int]:
    """What a primary started from ``primary`` runs with, for its standbys' minimums."""
    tunable = memory_settings(primary.cu_max)
    tunable.update({k.lower(): v for k, v in primary.pg_settings.items()})
    return {k: int(tunable[k]) for k in STANDBY_MINIMUM_KEYS
            if k in tunable and tunable[k].isdigit()}


def with_standby_minimums(tunable: dict[str, str], minimums: Mapping[str, int]) -> dict[str, str]:
    """Raise the settings a hot standby needs to at least its primary's values."""
    out = dict(tunable)
    for key in STANDBY_MINIMUM_KEYS:
        floor = minimums.get(key)
        if floor is None:
            continue
        try:
            current = int(out[key]) if key in out else None
        except ValueError:
            current = None
        if current is None or current < floor:
            out[key] = str(floor)
    return out


def quote(value: str) -> str:
    """A postgresql.conf string literal (any GUC type accepts the quoted form)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def check_user_settings(settings: Mapping[str, str], enforced: Mapping[str, str]) -> None:
    """Defensive: the API checks the allow-list when settings are stored; a row from
    before that check must not reach postgresql.conf either."""
    for name in user_settings.check(settings):
        if name in enforced or STORAGE_KEYS.match(name):  # never on the list; belt and braces
            raise InvalidInput(f"Postgres setting {name!r} is managed by Argon and cannot be "
                               "set per endpoint; remove it from pg_settings")


def render_config(spec: ComputeSpec, at: Placement) -> str:
    """The whole postgresql.conf for ``spec``: deterministic, each section sorted."""
    enforced = enforced_settings(spec, at)
    check_user_settings(spec.pg_settings, enforced)
    tunable = memory_settings(spec.cu_max)
    tunable.update({k.lower(): v for k, v in spec.pg_settings.items()})
    if spec.mode is ComputeMode.REPLICA:
        tunable = with_standby_minimums(tunable, spec.standby_minimums)
    lines = [
        HEADER,
        f"# endpoint {spec.endpoint_id}, PostgreSQL {spec.install.version}, "
        f"{spec.cu_min}-{spec.cu_max} CU",
        "",
        f"include_if_exists = {quote(BASE_CONF)}",
        "",
        "# sized for cu_max, then the endpoint's pg_settings",
        *(f"{k} = {quote(v)}" for k, v in sorted(tunable.items())),
        "",
        "# enforced by Argon",
        *(f"{k} = {quote(v)}" for k, v in sorted(enforced.items())),
        "",
        "# storage's archive and recovery settings; last, so they win",
        f"include_if_exists = {quote(STORAGE_CONF)}",
    ]
    return "\n".join(lines) + "\n"


def render_hba(*, bootstrap: bool = False) -> str:
    """SCRAM for everyone, on the socket (and loopback TCP, were it ever opened: computes
    listen on their unix socket only): nobody is trusted.

    ``bootstrap`` adds one line trusting ``cloud_admin`` on the private (0700) socket,
    used only while Argon sets cloud_admin's password in a data directory made before
    it had one (see ``process.ComputeManager``); the final file replaces it at once.
    """
    rows = [
        ("local", "all", "all", "", "scram-sha-256"),
        ("local", "replication", "all", "", "scram-sha-256"),
        ("host", "all", "all", "127.0.0.1/32", "scram-sha-256"),
        ("host", "all", "all", "::1/128", "scram-sha-256"),
        ("host", "replication", "all", "127.0.0.1/32", "scram-sha-256"),
        ("host", "replication", "all", "::1/128", "scram-sha-256"),
    ]
    if bootstrap:
        rows.insert(0, ("local", "all", SUPERUSER, "", "trust"))
    lines = [HEADER, "# every user, Argon's own cloud_admin included, logs in with SCRAM"]
    lines += [f"{t:<7}{db:<13}{user:<13}{addr:<15}{method}".rstrip()
              for t, db, user, addr, method in rows]
    return "\n".join(lines) + "\n"


def atomic_write(path: Path, text: str, owner: OsUser, mode: int = 0o600) -> None:
    """Write by temp file + fsync + rename, so a crash leaves the old or the new file."""
    tmp = path.with_name(path.name + ".argon-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    owner.chown(tmp)
    os.rename(tmp, path)


def write_config(spec: ComputeSpec, at: Placement, owner: OsUser, *,
                 bootstrap: bool = False) -> None:
    """Render both files into the data directory; keep initdb's file as the base."""
    text = render_config(spec, at)  # validates before anything on disk changes
    conf = at.pgdata / "postgresql.conf"
    base = at.pgdata / BASE_CONF
    if conf.exists() and not base.exists() and not conf.read_text().startswith(HEADER):
        os.rename(conf, base)
    _write_if_changed(conf, text, owner)
    _write_if_changed(at.pgdata / "pg_hba.conf", render_hba(bootstrap=bootstrap), owner)


def _write_if_changed(path: Path, text: str, owner: OsUser) -> None:
    # a wake renders the same files again: skip their two fsyncs (what is there was
    # written, fsynced and renamed by atomic_write at an earlier start)
    try:
        if path.read_text() == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write(path, text, owner)
