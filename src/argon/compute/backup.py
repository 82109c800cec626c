"""The SQL storage needs run on a live compute, kept in the compute room.

Branching, snapshots and replica seeds of a running timeline copy its data directory
between ``pg_backup_start`` and ``pg_backup_stop``; a branch at a past point first
seals the live WAL (``pg_switch_wal``).  Storage receives the results only
(``OnlineBackup``, ``WalSwitch``) and runs no SQL, so a storage backend that is not
a local directory (object storage, a volume snapshot) needs no database session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import psycopg

from argon.compute.spec import ComputeSpec
from argon.errors import Unavailable
from argon.pg import Lsn

if TYPE_CHECKING:
    from argon.compute.provider import ComputeProvider

Connect = Callable[[], psycopg.Connection]


@dataclass(frozen=True)
class BackupStop:
    """What ``pg_backup_stop`` returned: the copy is consistent once replayed to ``lsn``."""

    lsn: Lsn
    labelfile: str        # the backup_label to write into the copy
    spcmapfile: str       # tablespace_map ("" when there are none)


@dataclass
class OnlineBackup:
    """A running compute between ``pg_backup_start`` and ``pg_backup_stop``: what a copy
    made meanwhile needs to know, and (after the block) the stop's results."""

    label: str
    wal_segment_size: int
    log_directory: str    # the server's log directory setting (not copied)
    stopped: BackupStop | None = None


@contextmanager
def online_backup(connect: Connect, label: str) -> Iterator[OnlineBackup]:
    """Run the non-exclusive backup API around the block (blocks nobody; it only forces
    full-page writes meanwhile).  An error in the block closes the session, which aborts
    the backup: nothing to clean up on the compute."""
    try:
        with connect() as conn:
            backup = OnlineBackup(label, int(_setting(conn, "wal_segment_size")),
                                  _setting(conn, "log_directory"))
            conn.execute("SELECT pg_backup_start(%s, fast => true)", [label])
            yield backup
            row = conn.execute("SELECT lsn::text, labelfile, spcmapfile "
                               "FROM pg_backup_stop(wait_for_archive => false)").fetchone()
    except psycopg.Error as e:
        raise Unavailable(
            f"the running compute could not run an online backup ({label}): "
            f"{str(e).strip()}; make sure its compute is running (or branch it stopped)"
        ) from e
    if row is None:
        raise Unavailable("pg_backup_stop returned nothing; retry the branch")
    backup.stopped = BackupStop(Lsn.parse(row[0]), str(row[1]), str(row[2] or ""))


RunningBackup = Callable[[str], AbstractContextManager[OnlineBackup]]


def backup_of(computes: ComputeProvider, spec: ComputeSpec) -> RunningBackup:
    """``label -> online_backup(...)`` on the running compute of ``spec``, for storage."""
    return lambda label: online_backup(lambda: computes.connect(spec), label)


@dataclass(frozen=True)
class WalSwitch:
    """A live compute's WAL sealed at ``head``: the segment ``last_segment`` (the one
    holding ``head`` and the commit after it) is finished and on its way to the archive."""

    head: Lsn
    time: datetime        # the compute's now() at ``head``
    pg_timeline: int
    last_segment: str


def switch_wal(conn: psycopg.Connection) -> WalSwitch:
    """Record the head, commit one empty transaction after it (Postgres stops a time
    target only at a commit, so one must exist after any past time), and switch to a new
    segment."""
    row = conn.execute(
        "SELECT pg_current_wal_insert_lsn()::text, now(), "
        "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int, "
        "(SELECT setting::int FROM pg_settings WHERE name = 'wal_segment_size')"
    ).fetchone()
    assert row is not None
    head, now, tli, seg_size = Lsn.parse(row[0]), row[1], int(row[2]), int(row[3])
    conn.execute("SELECT pg_current_xact_id()")
    switched = conn.execute("SELECT pg_switch_wal()::text").fetchone()
    assert switched is not None
    end = Lsn.parse(switched[0])
    return WalSwitch(head, now, tli, Lsn(int(end) - 1).segment_name(tli, seg_size))


def _setting(conn: psycopg.Connection, name: str) -> str:
    row = conn.execute("SELECT setting FROM pg_settings WHERE name = %s", [name]).fetchone()
    if row is None:
        raise Unavailable(f"the compute has no setting {name}")
    return str(row[0])
