"""Snapshots and time samples: what makes a timeline's past reachable.

A snapshot is a consistent clone of a timeline's data directory at one LSN, stored
under ``<timeline>/snapshots/<LSN as 16 hex digits>/{snapshot.json,pgdata}``.  It is
either a backup-API clone (``backup_label`` plus the WAL to its stop point inside its
pg_wal) or a clone of a cleanly stopped data directory.  Recovery from it replays the
archives to any later point of the same line of history.

Samples (``<timeline>/samples.tsv``: ``<iso time>\\t<LSN>`` lines) map wall time to
LSN; the GC turns the retention window's start into an LSN with them.

Both are written by "write elsewhere, then rename" so a crash leaves either nothing or
a complete entry (``.tmp-*`` leftovers are removed by repair).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from argon.errors import InvalidInput
from argon.pg import Lsn

logger = logging.getLogger(__name__)

SNAPSHOTS_DIR = "snapshots"
SNAPSHOT_META = "snapshot.json"
SAMPLES_NAME = "samples.tsv"
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Snapshot:
    timeline_id: str
    lsn: Lsn            # consistent at this LSN: recovery may stop here or later
    pg_timeline: int    # the Postgres timeline of that LSN
    time: datetime      # wall time when it was consistent (every commit in it is older)
    kind: str           # "backup" (clone of a running server) | "stopped" | "initdb"

    @property
    def dirname(self) -> str:
        return f"{int(self.lsn):016X}"

    def to_json(self) -> dict[str, object]:
        return {"timeline_id": self.timeline_id, "lsn": str(self.lsn),
                "pg_timeline": self.pg_timeline, "time": self.time.isoformat(),
                "kind": self.kind}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Snapshot:
        try:
            return cls(str(data["timeline_id"]), Lsn.parse(str(data["lsn"])),
                       int(data["pg_timeline"]),  # type: ignore[call-overload]
                       datetime.fromisoformat(str(data["time"])), str(data["kind"]))
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"snapshot metadata is invalid: {e}") from None


def list_snapshots(timeline_dir: Path, timeline_id: str) -> list[Snapshot]:
    """Complete snapshots of one timeline, oldest first."""
    root = timeline_dir / SNAPSHOTS_DIR
    if not root.is_dir():
        return []
    found: list[Snapshot] = []
    for entry in os.scandir(root):
        if entry.name.startswith("."):
            continue
        try:
            data = json.loads((Path(entry.path) / SNAPSHOT_META).read_text())
            snap = Snapshot.from_json(data)
        except (OSError, ValueError, InvalidInput) as e:
            logger.warning("ignoring unreadable snapshot %s: %s", entry.path, e)
            continue
        found.append(snap if snap.timeline_id == timeline_id else
                     Snapshot(timeline_id, snap.lsn, snap.pg_timeline, snap.time, snap.kind))
    return sorted(found, key=lambda s: int(s.lsn))


def snapshot_pgdata(timeline_dir: Path, snap: Snapshot) -> Path:
    return timeline_dir / SNAPSHOTS_DIR / snap.dirname / "pgdata"


def staging_dir(timeline_dir: Path, token: str) -> Path:
    root = timeline_dir / SNAPSHOTS_DIR
    root.mkdir(mode=0o711, exist_ok=True)
    path = root / f"{TMP_PREFIX}{token}"
    path.mkdir(mode=0o711)
    os.chmod(path, 0o711)
    return path


def publish(timeline_dir: Path, staging: Path, snap: Snapshot) -> bool:
    """Write the metadata and rename the staging directory into place.

    Returns False (and drops the staging copy) when a snapshot at that LSN exists.
    """
    (staging / SNAPSHOT_META).write_text(json.dumps(snap.to_json(), indent=2) + "\n")
    final = timeline_dir / SNAPSHOTS_DIR / snap.dirname
    if final.exists():
        shutil.rmtree(staging, ignore_errors=True)
        return False
    os.rename(staging, final)
    return True


def remove_snapshot(timeline_dir: Path, snap: Snapshot) -> None:
    path = timeline_dir / SNAPSHOTS_DIR / snap.dirname
    trash = path.with_name(f"{TMP_PREFIX}del-{snap.dirname}")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def clean_staging(timeline_dir: Path) -> int:
    root = timeline_dir / SNAPSHOTS_DIR
    if not root.is_dir():
        return 0
    n = 0
    for entry in os.scandir(root):
        if entry.name.startswith(TMP_PREFIX):
            shutil.rmtree(entry.path, ignore_errors=True)
            n += 1
    return n


# -- time samples ---------------------------------------------------------------------

def append_sample(timeline_dir: Path, when: datetime, lsn: Lsn) -> None:
    if when.tzinfo is None:
        raise InvalidInput("a time sample must be timezone-aware")
    with open(timeline_dir / SAMPLES_NAME, "a") as f:
        f.write(f"{when.isoformat()}\t{lsn}\n")


def read_samples(timeline_dir: Path) -> list[tuple[datetime, Lsn]]:
    try:
        text = (timeline_dir / SAMPLES_NAME).read_text()
    except FileNotFoundError:
        return []
    out: list[tuple[datetime, Lsn]] = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 2:
            continue  # a torn last line after a crash
        try:
            out.append((datetime.fromisoformat(parts[0]), Lsn.parse(parts[1])))
        except (ValueError, InvalidInput):
            continue
    return sorted(out, key=lambda s: s[0])


def rewrite_samples(timeline_dir: Path, samples: list[tuple[datetime, Lsn]]) -> None:
    tmp = timeline_dir / (SAMPLES_NAME + ".tmp")
    tmp.write_text("".join(f"{w.isoformat()}\t{lsn}\n" for w, lsn in samples))
    os.rename(tmp, timeline_dir / SAMPLES_NAME)
