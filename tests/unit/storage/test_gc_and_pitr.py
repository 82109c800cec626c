"""The GC planner and point-in-time rules, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from argon.errors import InvalidInput
from argon.pg import Lsn
from argon.storage.gc import TimelineFacts, plan_gc
from argon.storage.pitr import ChainLink, HistoryBounds, PointInTime, check_point, choose_snapshot
from argon.storage.snapshots import Snapshot

MB = 1024 * 1024
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def snap(tl: str, mb: int) -> Snapshot:
    return Snapshot(tl, Lsn(mb * MB), 1, T0 + timedelta(minutes=mb), "backup")


def facts(tl: str, snaps: list[int], segs: int, window_mb: int | None,
          parent: str | None = None, branch_mb: int | None = None,
          pinned: bool = False) -> TimelineFacts:
    return TimelineFacts(
        id=tl, parent_id=parent, branch_lsn=Lsn(branch_mb * MB) if branch_mb else None,
        snapshots=[snap(tl, m) for m in snaps],
        segments=[(f"seg{n}", n) for n in range(segs)],
        window_start_lsn=Lsn(window_mb * MB) if window_mb is not None else None,
        segment_size=MB, pinned=pinned)


def deleted(plan, tl: str) -> tuple[list[int], list[int]]:  # type: ignore[no-untyped-def]
    snaps = sorted(int(d.snapshot.lsn) // MB for d in plan.deletions
                   if d.timeline_id == tl and d.snapshot)
    segs = sorted(int(d.segment[3:]) for d in plan.deletions if d.timeline_id == tl and d.segment)
    return snaps, segs


def test_window_keeps_the_newest_snapshot_before_its_start() -> None:
    plan = plan_gc({"main": facts("main", [0, 10, 20, 30], 40, window_mb=25)})
    assert plan.floors["main"] == Lsn(20 * MB)
    assert deleted(plan, "main") == ([0, 10], list(range(20)))


def test_a_child_branch_point_keeps_older_history() -> None:
    plan = plan_gc({
        "main": facts("main", [0, 10, 20, 30], 40, window_mb=25),
        "dev": facts("dev", [], 5, window_mb=None, parent="main", branch_mb=12),
    })
    assert plan.floors["main"] == Lsn(10 * MB)
    assert deleted(plan, "main") == ([0], list(range(10)))
    assert deleted(plan, "dev") == ([], [])


def test_a_timeline_without_own_snapshot_needs_its_ancestors() -> None:
    plan = plan_gc({
        "main": facts("main", [0, 10], 40, window_mb=39),
        "dev": facts("dev", [], 5, window_mb=None, parent="main", branch_mb=35),
        "grand": facts("grand", [], 3, window_mb=None, parent="dev", branch_mb=38),
    })
    assert plan.floors["main"] == Lsn(10 * MB)
    assert plan.floors["dev"] is None and plan.floors["grand"] is None
    assert deleted(plan, "dev") == ([], [])


def test_pinned_and_whole_window_timelines_keep_everything() -> None:
    plan = plan_gc({"a": facts("a", [0, 10], 20, window_mb=15, pinned=True),
                    "b": facts("b", [0, 10], 20, window_mb=None)})
    assert plan.deletions == []


def test_choose_snapshot_walks_up_the_chain_within_branch_points() -> None:
    chain = [ChainLink("dev", [snap("dev", 30)], None),
             ChainLink("main", [snap("main", 0), snap("main", 10), snap("main", 25)],
                       Lsn(20 * MB))]
    assert choose_snapshot(chain, PointInTime(lsn=Lsn(35 * MB))) == snap("dev", 30)
    assert choose_snapshot(chain, PointInTime(lsn=Lsn(22 * MB))) == snap("main", 10)
    assert choose_snapshot(chain, PointInTime(time=T0 + timedelta(minutes=5))) == snap("main", 0)
    assert choose_snapshot(chain[:1], PointInTime(lsn=Lsn(22 * MB))) is None


def _bounds() -> HistoryBounds:
    now = T0 + timedelta(hours=2)
    return HistoryBounds("main", Lsn(5 * MB), T0, Lsn(50 * MB), now - timedelta(hours=1),
                         Lsn(20 * MB), now)


@pytest.mark.parametrize("point,match", [
    (PointInTime(time=T0 + timedelta(hours=3)), "in the future"),
    (PointInTime(time=T0 + timedelta(minutes=30)), "outside the history window"),
    (PointInTime(lsn=Lsn(60 * MB)), "in the future"),
    (PointInTime(lsn=Lsn(1 * MB)), "before the branch point"),
    (PointInTime(lsn=Lsn(10 * MB)), "outside the history window"),
])
def test_points_outside_the_reachable_range_are_refused(point: PointInTime, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        check_point(point, _bounds())


def test_points_inside_are_accepted_and_naive_times_refused() -> None:
    check_point(PointInTime(lsn=Lsn(30 * MB)), _bounds())
    check_point(PointInTime(time=T0 + timedelta(minutes=90)), _bounds())
    with pytest.raises(InvalidInput, match="time zone"):
        PointInTime(time=datetime(2026, 1, 1))
    with pytest.raises(InvalidInput, match="exactly one"):
        PointInTime()
