"""``argon.storage.conf``: the settings storage owns inside each data directory.

The compute room's postgresql.conf ends with ``include_if_exists = 'argon.storage.conf'``,
so these values win for the keys written here: WAL archiving into the timeline's own
archive, a ``restore_command`` that searches this timeline's archive and then each
ancestor's, and (while a branch's first recovery is pending) the recovery target.

``render_storage_conf`` is pure; ``write_storage_conf`` does the I/O.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from argon.errors import InvalidInput
from argon.pg import Lsn, OsUser
from argon.storage.objectstore.wal_commands import (
    BucketWal,
    bucket_archive_command,
    bucket_restore_command,
)

CONF_NAME = "argon.storage.conf"


class TargetKind(StrEnum):
    IMMEDIATE = "immediate"   # stop as soon as the data is consistent (a fresh branch)
    LSN = "lsn"               # issue 5: branch at a past LSN
    TIME = "time"             # issue 5: branch at a past time
    END = "end"               # replay all archived WAL of ``timeline`` (disaster recovery)


@dataclass(frozen=True)
class RecoveryTarget:
    kind: TargetKind = TargetKind.IMMEDIATE
    lsn: Lsn | None = None
    time: datetime | None = None
    inclusive: bool = True
    timeline: int | None = None   # the Postgres timeline to follow; None = 'latest'

    def __post_init__(self) -> None:
        if self.kind is TargetKind.LSN and self.lsn is None:
            raise InvalidInput("a recovery target of kind 'lsn' needs an LSN")
        if self.kind is TargetKind.TIME:
            if self.time is None or self.time.tzinfo is None:
                raise InvalidInput("a recovery target time must be timezone-aware")


@dataclass(frozen=True)
class StorageConf:
    archive_dir: Path                       # this timeline's wal/
    restore_dirs: tuple[Path, ...]          # this timeline's wal/, then ancestors' (nearest first)
    recovery_target: RecoveryTarget | None = None
    bucket: BucketWal | None = None         # also archive to / restore from a bucket


def quote_conf(value: str) -> str:
    """A postgresql.conf string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _escape_percent(text: str) -> str:
    # restore_command expands %f/%p/%r/%%: a literal % in a path must be doubled.
    return text.replace("%", "%%")


def restore_command(dirs: tuple[Path, ...]) -> str:
    """A /bin/sh one-liner copying ``%f`` from the first archive that has it."""
    if not dirs:
        raise InvalidInput("a restore_command needs at least one archive directory")
    quoted = " ".join(_escape_percent(shlex.quote(str(d))) for d in dirs)
    return (f'for d in {quoted}; do if [ -f "$d/%f" ]; then exec cp "$d/%f" "%p"; fi; '
            "done; exit 1")


def _target_lines(target: RecoveryTarget) -> list[str]:
    if target.kind is TargetKind.END:
        # no target: recovery ends (and promotes) where the archive ends; the timeline
        # is named, as 'latest' could follow an ancestor's newer Postgres timeline
        return [f"recovery_target_timeline = {quote_conf(str(target.timeline or 'latest'))}"]
    if target.kind is TargetKind.IMMEDIATE:
        lines = ["recovery_target = 'immediate'"]
    elif target.kind is TargetKind.LSN:
        lines = [f"recovery_target_lsn = {quote_conf(str(target.lsn))}",
                 f"recovery_target_inclusive = {'on' if target.inclusive else 'off'}"]
    else:
        assert target.time is not None  # checked in __post_init__
        lines = [f"recovery_target_time = {quote_conf(target.time.isoformat(sep=' '))}",
                 f"recovery_target_inclusive = {'on' if target.inclusive else 'off'}"]
    tli = str(target.timeline) if target.timeline is not None else "latest"
    return [*lines, "recovery_target_action = 'promote'",
            f"recovery_target_timeline = {quote_conf(tli)}"]


def render_storage_conf(conf: StorageConf) -> str:
    if conf.bucket is not None:
        return _render_with_bucket(conf)
    lines = [
        "# Written by Argon storage; rewritten on every branch/recovery change. Do not edit.",
        "archive_mode = on",
        "archive_command = ''",  # PG16+ refuse archive_command and archive_library together
        "archive_library = 'basic_archive'",
        f"basic_archive.archive_directory = {quote_conf(str(conf.archive_dir))}",
        f"restore_command = {quote_conf(restore_command(conf.restore_dirs))}",
    ]
    if conf.recovery_target is not None:
        lines.append("# one-shot: removed once the branch's first recovery has finished")
        lines.extend(_target_lines(conf.recovery_target))
    return "\n".join(lines) + "\n"


def _render_with_bucket(conf: StorageConf) -> str:
    assert conf.bucket is not None
    # Only a recovery that reads history (a past point, a timeline rebuilt from the bucket)
    # may need WAL that is in no local archive; a branch from the head got its WAL from
    # Argon already, and each miss in the bucket costs it an interpreter start.
    target = conf.recovery_target
    restore = (bucket_restore_command(conf.bucket, conf.restore_dirs)
               if target is not None and target.kind is not TargetKind.IMMEDIATE
               else restore_command(conf.restore_dirs))
    lines = [
        "# Written by Argon storage; rewritten on every branch/recovery change. Do not edit.",
        "archive_mode = on",
        "archive_library = ''",
        f"archive_command = {quote_conf(bucket_archive_command(conf.bucket, conf.archive_dir))}",
        f"archive_timeout = {conf.bucket.archive_timeout}",
        f"restore_command = {quote_conf(restore)}",
    ]
    if conf.recovery_target is not None:
        lines.append("# one-shot: removed once the branch's first recovery has finished")
        lines.extend(_target_lines(conf.recovery_target))
    return "\n".join(lines) + "\n"


def write_storage_conf(pgdata: Path, conf: StorageConf, owner: OsUser) -> None:
    """Write the file atomically (temp, fsync, rename), owned by the Postgres account."""
    path = pgdata / CONF_NAME
    tmp = pgdata / (CONF_NAME + ".tmp")
    data = render_storage_conf(conf).encode()
    try:
        if path.read_bytes() == data:
            return   # every start rewrites it: no fsync when nothing changed (a wake)
    except OSError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    owner.chown(tmp)
    os.rename(tmp, path)
