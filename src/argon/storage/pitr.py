"""Point-in-time targets: which points may be asked for, and which snapshot reaches them.

Pure functions over values (tested without disk); ``Storage.branch_timeline_at`` applies
them.  LSNs only grow down a chain of timelines (a child continues its parent's WAL
positions), so the newest snapshot at or before a point may sit on the target timeline
or on any ancestor, provided it is not past the point where the chain left it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon.errors import InvalidInput
from argon.pg import Lsn
from argon.storage.snapshots import Snapshot


@dataclass(frozen=True)
class PointInTime:
    """What a caller asks for: exactly one of ``lsn`` / ``time``."""

    lsn: Lsn | None = None
    time: datetime | None = None

    def __post_init__(self) -> None:
        if (self.lsn is None) == (self.time is None):
            raise InvalidInput("give exactly one of an LSN or a timestamp")
        if self.time is not None and self.time.tzinfo is None:
            raise InvalidInput(f"timestamp {self.time.isoformat()} has no time zone; give "
                               "it in UTC with a 'Z' or an offset (2026-11-25T10:00:00Z)")

    def __str__(self) -> str:
        return str(self.lsn) if self.lsn is not None else _iso(self.time)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ChainLink:
    """One timeline of a chain, nearest first; ``max_lsn`` is where the chain left it
    (None for the target timeline itself)."""

    timeline_id: str
    snapshots: Sequence[Snapshot]
    max_lsn: Lsn | None


@dataclass(frozen=True)
class HistoryBounds:
    """What one timeline can reach: from its start (branch point or first snapshot) and
    the window's start, up to its head."""

    name: str                    # for messages: the branch or timeline
    start_lsn: Lsn
    start_time: datetime
    head_lsn: Lsn
    window_start: datetime       # now - history_retention_seconds
    window_start_lsn: Lsn | None  # the newest sampled LSN at or before window_start
    now: datetime


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def check_point(point: PointInTime, b: HistoryBounds) -> None:
    """Reject, before any work, a point the timeline cannot reach, naming the range."""
    lo_time = max(b.start_time, b.window_start)
    lo_lsn = max(b.start_lsn, b.window_start_lsn or Lsn(0))
    if point.time is not None:
        t = point.time
        if t > b.now + timedelta(seconds=1):
            raise InvalidInput(f"timestamp {_iso(t)} is in the future; {b.name} can be "
                               f"branched between {_iso(lo_time)} and now ({_iso(b.now)})")
        if t < b.window_start:
            raise InvalidInput(f"timestamp {_iso(t)} is outside the history window (it starts "
                               f"at {_iso(b.window_start)}); choose a point between "
                               f"{_iso(lo_time)} and now, or raise the project's "
                               "history_retention_seconds")
        if t < b.start_time:
            raise InvalidInput(f"timestamp {_iso(t)} is before {b.name} was created "
                               f"({_iso(b.start_time)}); choose a point between "
                               f"{_iso(lo_time)} and now, or branch from its parent")
        return
    lsn = point.lsn
    assert lsn is not None
    if lsn > b.head_lsn:
        raise InvalidInput(f"LSN {lsn} is in the future: {b.name} has written WAL up to "
                           f"{b.head_lsn}; choose an LSN between {lo_lsn} and {b.head_lsn}")
    if lsn < b.start_lsn:
        raise InvalidInput(f"LSN {lsn} is before the branch point of {b.name} "
                           f"({b.start_lsn}); choose an LSN between {lo_lsn} and "
                           f"{b.head_lsn}, or branch from its parent")
    if b.window_start_lsn is not None and lsn < b.window_start_lsn:
        raise InvalidInput(f"LSN {lsn} is outside the history window (it starts at "
                           f"{b.window_start_lsn}, {_iso(b.window_start)}); choose an LSN "
                           f"between {lo_lsn} and {b.head_lsn}")


def choose_snapshot(chain: Sequence[ChainLink], point: PointInTime) -> Snapshot | None:
    """The newest snapshot from which replay can reach ``point`` (None: unreachable)."""
    for link in chain:
        candidates = [
            s for s in link.snapshots
            if (link.max_lsn is None or s.lsn <= link.max_lsn)
            and (point.lsn is None or s.lsn <= point.lsn)
            and (point.time is None or s.time <= point.time)
        ]
        if candidates:
            return max(candidates, key=lambda s: int(s.lsn))
    return None


def lsn_at(samples: Sequence[tuple[datetime, Lsn]], when: datetime) -> Lsn | None:
    """The newest sampled LSN at or before ``when`` (a lower bound of the LSN then)."""
    best: Lsn | None = None
    for t, lsn in samples:
        if t <= when and (best is None or lsn > best):
            best = lsn
    return best
