"""The consumption history's pure core: Neon's time frames, run overlap, WAL advance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from argon.control import regions
from argon.control.consumption import (Granularity, RangeNotAcceptable, Run, frames,
                                       id_list, lsn_advance, metric_list, run_seconds)
from argon.errors import InvalidInput

NOW = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
H = timedelta(hours=1)


def test_frames_round_from_down_and_cover_up_to_to() -> None:
    got = frames(NOW - 2 * H, NOW, Granularity.HOURLY, NOW)
    assert [f[0].hour for f in got] == [8, 9, 10]
    assert got[-1][1] == datetime(2026, 12, 1, 11, tzinfo=UTC)
    daily = frames(NOW - timedelta(days=1), NOW, Granularity.DAILY, NOW)
    assert [f[0].day for f in daily] == [30, 1]
    monthly = frames(datetime(2026, 10, 15, tzinfo=UTC), NOW, Granularity.MONTHLY, NOW)
    assert [(f[0].month, f[1].month) for f in monthly] == [(10, 11), (11, 12), (12, 1)]
    assert monthly[-1][1].year == 2027
    # Nothing after the frame holding now, however far 'to' reaches.
    future = frames(NOW - H, datetime(9999, 12, 31, 23, tzinfo=UTC), Granularity.HOURLY, NOW)
    assert future[-1][1] == datetime(2026, 12, 1, 11, tzinfo=UTC)


def test_frames_refuse_what_neon_refuses() -> None:
    with pytest.raises(RangeNotAcceptable, match="168 hours"):
        frames(NOW - 200 * H, NOW, Granularity.HOURLY, NOW)
    with pytest.raises(RangeNotAcceptable, match="60 days"):
        frames(NOW - timedelta(days=61), NOW, Granularity.DAILY, NOW)
    with pytest.raises(InvalidInput, match="later than"):
        frames(NOW, NOW - H, Granularity.HOURLY, NOW)
    with pytest.raises(InvalidInput, match="time zone"):
        frames(NOW.replace(tzinfo=None), NOW, Granularity.HOURLY, NOW)
    assert RangeNotAcceptable.status == 406


def test_run_seconds_clip_to_the_frame_and_count_open_runs_to_now() -> None:
    runs = [Run("br-a", 0.25, NOW - 2 * H, NOW - H),
            Run("br-a", 2.0, NOW - timedelta(minutes=10), None)]
    lo, hi = NOW.replace(minute=0), NOW.replace(minute=0) + H
    active, cu = run_seconds(runs, lo, hi, NOW)
    assert active == 600 and cu == 1200             # only the open run, 10:20-10:30
    active, cu = run_seconds(runs, lo - 2 * H, lo, NOW)
    assert active == 3600 and cu == 900             # the closed run, 8:30-9:30


def test_lsn_advance_is_the_sampled_growth_inside_the_frame() -> None:
    samples = [(NOW - 3 * H, 100), (NOW - 2 * H, 300), (NOW - H, 1000)]
    assert lsn_advance(samples, NOW - 4 * H, NOW) == 900
    assert lsn_advance(samples, NOW - 2.5 * H, NOW - 1.5 * H) == 200
    assert lsn_advance(samples, NOW - 30 * timedelta(minutes=1), NOW) == 0
    assert lsn_advance([], NOW - H, NOW) == 0


def test_metric_and_id_lists_take_repeated_or_comma_separated_values() -> None:
    assert id_list(["a,b", "c"]) == ["a", "b", "c"]
    assert metric_list(None, ("x", "y"), ("x",)) == ["x"]
    assert metric_list(["y,x", "y"], ("x", "y"), None) == ["y", "x"]
    with pytest.raises(InvalidInput, match="required"):
        metric_list(None, ("x",), None)
    with pytest.raises(InvalidInput, match="unknown metric 'z'"):
        metric_list(["z"], ("x",), None)


def test_neon_region_ids_are_names_of_the_local_region() -> None:
    assert regions.resolve(None) == "local"
    assert regions.resolve("aws-us-east-2") == "aws-us-east-2"
    with pytest.raises(InvalidInput, match="azure-gwc"):
        regions.resolve("gcp-us-central1")
    listed = regions.listing()
    assert [r["region_id"] for r in listed if r["default"]] == ["local"]
