"""WAL facts as pure functions: segment ranges, backup_label and pg_control fields.

No I/O here except ``read_control_file`` (a single small read); everything else works on
values so that it can be tested without a server.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from argon.errors import InvalidInput
from argon.pg import Lsn

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
_SEGMENT_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
_HISTORY_RE = re.compile(r"^[0-9A-F]{8}\.history$")


def is_segment_name(name: str) -> bool:
    return _SEGMENT_RE.match(name) is not None


def is_history_name(name: str) -> bool:
    return _HISTORY_RE.match(name) is not None


def segment_number(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> tuple[int, int]:
    """``(timeline, segno)`` of a WAL segment file name."""
    m = _SEGMENT_RE.match(name)
    if not m:
        raise InvalidInput(f"{name!r} is not a WAL segment file name")
    per_id = 0x100000000 // segment_size
    return int(m.group(1), 16), int(m.group(2), 16) * per_id + int(m.group(3), 16)


def segment_name(timeline: int, segno: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    per_id = 0x100000000 // segment_size
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


def segments_between(timeline: int, start: Lsn, end: Lsn,
                     segment_size: int = DEFAULT_SEGMENT_SIZE) -> list[str]:
    """Segment names holding WAL from ``start`` up to (not including) ``end``.

    ``end`` is an end-of-record position: WAL ending exactly on a segment boundary lives
    in the previous segment, as in Postgres' ``XLByteToPrevSeg``.
    """
    if end < start:
        raise InvalidInput(f"WAL range end {end} is before its start {start}")
    first = int(start) // segment_size
    last = max(first, (int(end) - 1) // segment_size)
    return [segment_name(timeline, n, segment_size) for n in range(first, last + 1)]


@dataclass(frozen=True)
class BackupLabel:
    start_lsn: Lsn
    start_segment: str
    start_timeline: int


_LABEL_START = re.compile(r"^START WAL LOCATION: (\S+) \(file ([0-9A-F]{24})\)$", re.M)
_LABEL_TLI = re.compile(r"^START TIMELINE: (\d+)$", re.M)


def parse_backup_label(text: str) -> BackupLabel:
    """The fields Argon needs from a ``backup_label`` written by ``pg_backup_stop``."""
    start, tli = _LABEL_START.search(text), _LABEL_TLI.search(text)
    if not start or not tli:
        raise InvalidInput("backup_label lacks START WAL LOCATION or START TIMELINE")
    return BackupLabel(Lsn.parse(start.group(1)), start.group(2), int(tli.group(1)))


class DbState(IntEnum):
    """``DBState`` from pg_control.h (stable since PostgreSQL 9.x)."""

    STARTUP = 0
    SHUTDOWNED = 1
    SHUTDOWNED_IN_RECOVERY = 2
    SHUTDOWNING = 3
    IN_CRASH_RECOVERY = 4
    IN_ARCHIVE_RECOVERY = 5
    IN_PRODUCTION = 6


@dataclass(frozen=True)
class ControlFacts:
    system_identifier: int
    state: DbState
    checkpoint: Lsn        # location of the latest checkpoint record
    redo: Lsn              # where replay of that checkpoint starts
    timeline: int          # the checkpoint's timeline
    time: int = 0          # pg_control's last update (unix seconds): a clean stop's time


# The head of ControlFileData has kept this layout from 9.x to 18: system_identifier,
# pg_control_version, catalog_version_no, state, time, checkPoint, then CheckPoint
# whose first fields are redo, ThisTimeLineID.  Native alignment, as Postgres writes it.
_CONTROL_HEAD = struct.Struct("@QIIiqQQI")


def parse_control_head(data: bytes) -> ControlFacts:
    if len(data) < _CONTROL_HEAD.size:
        raise InvalidInput("pg_control is truncated")
    sysid, version, _cat, state, _time, checkpoint, redo, tli = _CONTROL_HEAD.unpack_from(data)
    if not 1100 <= version < 10000:
        raise InvalidInput(f"pg_control version {version} is not one Argon understands")
    try:
        db_state = DbState(state)
    except ValueError:
        raise InvalidInput(f"pg_control has an unknown cluster state {state}") from None
    return ControlFacts(sysid, db_state, Lsn(checkpoint), Lsn(redo), tli, int(_time))


def read_control_file(pgdata: Path) -> ControlFacts:
    with open(pgdata / "global" / "pg_control", "rb") as f:
        return parse_control_head(f.read(_CONTROL_HEAD.size))
