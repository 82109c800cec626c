"""The archive_command and restore_command of a timeline whose WAL also goes to a bucket.

Pure: values in, postgresql.conf strings out (``storage/conf.py`` writes them).  The
commands run ``wal_archive.py`` from the WAL kit (``kit.py``) with an interpreter the
Postgres account can execute, so archiving goes on while Argon itself is down.  No secret
is in them: the AWS variables are in a 0600 file of the Postgres account.

Key layout in the bucket (under its prefix)::

    timelines/<timeline_id>/wal/<segment>            000000010000000000000003
    timelines/<timeline_id>/wal/<tli>.history        00000002.history
    timelines/<timeline_id>/wal/<segment>.partial    a promoted branch's last old segment

``timeline_id`` is the directory name of the local archive (``<root>/<id>/wal``), so a
local archive directory and its bucket prefix always name the same timeline.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

ARCHIVE_ENTRY = "wal_archive.py"
# Postgres switches to a new segment after this many seconds with WAL written, so a
# segment that fills slowly still reaches the bucket: the bound on what a lost host disk
# can take with it (plus one upload).  ARGON_WAL_ARCHIVE_TIMEOUT changes it.
DEFAULT_ARCHIVE_TIMEOUT = 60


@dataclass(frozen=True)
class BucketWal:
    """Where the WAL commands find their interpreter, code, credentials and bucket."""

    url: str               # s3://bucket/prefix
    python: Path           # an interpreter the Postgres account can run
    kit: Path              # the kit directory (wal_archive.py and its imports)
    credentials: Path      # 0600 file of the Postgres account: AWS_* variables
    status_dir: Path       # the archiver's per-timeline status files (read by Argon)
    archive_timeout: int = DEFAULT_ARCHIVE_TIMEOUT   # seconds; 0: only full segments


def wal_key(timeline_id: str, name: str) -> str:
    """The bucket key of a WAL file (segment, .history, .partial) of a timeline."""
    return f"timelines/{timeline_id}/wal/{name}"


def timeline_of(archive_dir: Path) -> str:
    """``<root>/<timeline_id>/wal`` -> ``timeline_id``."""
    return archive_dir.parent.name


def _pct(text: str) -> str:
    # archive_command and restore_command expand %f/%p/%r/%%: a literal % must be doubled.
    return text.replace("%", "%%")


def _entry(bw: BucketWal, verb: str) -> str:
    parts = [str(bw.python), "-I", "-S", str(bw.kit / ARCHIVE_ENTRY), verb,
             "--url", bw.url, "--credentials", str(bw.credentials)]
    return " ".join(_pct(shlex.quote(p)) for p in parts)


def bucket_archive_command(bw: BucketWal, archive_dir: Path) -> str:
    """Copy ``%p`` into the local archive and into the bucket; success only when both
    hold it (identical content already there counts as success, other content fails)."""
    extra = ["--archive-dir", str(archive_dir), "--status-dir", str(bw.status_dir)]
    return (_entry(bw, "push") + " " + " ".join(_pct(shlex.quote(p)) for p in extra)
            + " %p %f")


def bucket_restore_command(bw: BucketWal, dirs: tuple[Path, ...]) -> str:
    """Copy ``%f`` from the first local archive that has it (no Python started), else
    fetch it from the same timelines' prefixes in the bucket, nearest first."""
    quoted = " ".join(_pct(shlex.quote(str(d))) for d in dirs)
    return (f'for d in {quoted}; do if [ -f "$d/%f" ]; then exec cp "$d/%f" "%p"; fi; '
            f"done; exec {_entry(bw, 'fetch')} %f %p {quoted}")
