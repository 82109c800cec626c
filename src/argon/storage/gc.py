"""History GC: a pure planner (what may go, and why) and an executor that deletes it.

What must stay reachable: every point of a timeline from the start of its retention
window to its head, and every child's branch point.  A point is reachable from the
newest snapshot at or before it (on the timeline or, through the branch point, on an
ancestor) plus the archived WAL from that snapshot on.  So per timeline the planner
finds a *floor*: the oldest snapshot LSN anything needs.  Snapshots below the floor go,
and archived segments that end before the floor's segment go.  Timeline history files
and the data directory itself are never touched; a pinned timeline (a restore or branch
being built from it) keeps everything.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from argon.pg import Lsn
from argon.storage.pitr import lsn_at
from argon.storage.snapshots import Snapshot, remove_snapshot
from argon.storage.wal import is_segment_name, segment_number

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimelineFacts:
    id: str
    parent_id: str | None
    branch_lsn: Lsn | None                 # where it left its parent (None for a root)
    snapshots: Sequence[Snapshot]
    segments: Sequence[tuple[str, int]]    # (file name, segment number) in its archive
    window_start_lsn: Lsn | None           # None: the whole timeline is in the window
    segment_size: int
    pinned: bool = False


@dataclass(frozen=True)
class Deletion:
    timeline_id: str
    snapshot: Snapshot | None = None
    segment: str | None = None
    reason: str = ""


@dataclass
class GcPlan:
    deletions: list[Deletion] = field(default_factory=list)
    floors: dict[str, Lsn | None] = field(default_factory=dict)  # None: keep all


def plan_gc(timelines: Mapping[str, TimelineFacts]) -> GcPlan:
    floors: dict[str, Lsn | None] = {}
    keep_all: set[str] = set()

    def lower(tl: str, lsn: Lsn) -> None:
        if tl in keep_all:
            return
        cur = floors.get(tl)
        floors[tl] = lsn if cur is None else min(cur, lsn)

    def need(tl: str, lsn: Lsn | None) -> None:
        """``tl`` must be replayable up from ``lsn`` (None: from its very start)."""
        facts = timelines.get(tl)
        if facts is None:
            return
        if lsn is not None:
            older = [s for s in facts.snapshots if s.lsn <= lsn]
            if older:
                lower(tl, max(older, key=lambda s: int(s.lsn)).lsn)
                return
        keep_all.add(tl)
        floors.pop(tl, None)
        if facts.parent_id is not None and facts.branch_lsn is not None:
            need(facts.parent_id, facts.branch_lsn)

    for facts in timelines.values():
        if facts.pinned:
            need(facts.id, None)
        else:
            need(facts.id, facts.window_start_lsn)
        if facts.parent_id is not None and facts.branch_lsn is not None:
            need(facts.parent_id, facts.branch_lsn)

    plan = GcPlan()
    for tl, facts in sorted(timelines.items()):
        if tl in keep_all or tl not in floors:
            plan.floors[tl] = None
            continue
        floor = floors[tl]
        assert floor is not None
        plan.floors[tl] = floor
        for s in facts.snapshots:
            if s.lsn < floor:
                plan.deletions.append(Deletion(tl, snapshot=s, reason=(
                    f"snapshot {s.lsn} is older than {floor}, the oldest snapshot the "
                    "window and the branch points need")))
        floor_seg = int(floor) // facts.segment_size
        for name, segno in facts.segments:
            if segno < floor_seg:
                plan.deletions.append(Deletion(tl, segment=name, reason=(
                    f"WAL segment {name} ends before snapshot {floor}")))
    return plan


def gather_facts(storage, timeline_ids: Iterable[str], window_starts: Mapping[str, datetime],  # type: ignore[no-untyped-def]
                 pinned: set[str]) -> dict[str, TimelineFacts]:
    """Read what the planner needs from disk (``storage`` is a ``Storage``)."""
    out: dict[str, TimelineFacts] = {}
    for tl in timeline_ids:
        if not storage.exists(tl):
            continue
        m = storage.manifest(tl)
        archive = storage.archive_dir(tl)
        names = sorted(n for n in os.listdir(archive) if is_segment_name(n)) \
            if archive.is_dir() else []
        seg_size = _archive_segment_size(archive, names)
        segments = [(n, segment_number(n, seg_size)[1]) for n in names]
        start = window_starts.get(tl)
        wlsn = lsn_at(storage.samples(tl), start) if start is not None else None
        out[tl] = TimelineFacts(
            id=tl, parent_id=m.parent_id,
            branch_lsn=m.branch_point.lsn if m.branch_point else None,
            snapshots=storage.snapshots(tl), segments=segments, window_start_lsn=wlsn,
            segment_size=seg_size, pinned=tl in pinned)
    return out


def execute_gc(storage, plan: GcPlan) -> int:  # type: ignore[no-untyped-def]
    """Delete what the plan lists; returns the number of items removed."""
    done = 0
    for d in plan.deletions:
        tdir = storage.root / d.timeline_id
        try:
            if d.snapshot is not None:
                remove_snapshot(tdir, d.snapshot)
            elif d.segment is not None:
                (storage.archive_dir(d.timeline_id) / d.segment).unlink(missing_ok=True)
            done += 1
            logger.debug("gc %s: %s", d.timeline_id, d.reason)
        except OSError as e:
            logger.warning("gc of %s failed: %s", d.timeline_id, e)
    if done:
        logger.info("history gc removed %d items", done)
    return done


def _archive_segment_size(archive, names: list[str]) -> int:  # type: ignore[no-untyped-def]
    for n in names:
        try:
            return int((archive / n).stat().st_size) or 16 * 1024 * 1024
        except OSError:
            continue
    return 16 * 1024 * 1024
