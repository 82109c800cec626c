"""The bucket snapshot planner: keys, records, chunk uploads, pending snapshots, GC, and
where a recovered timeline's first start stops."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from argon.errors import InvalidInput
from argon.pg import Lsn
from argon.storage.conf import TargetKind
from argon.storage.manifest import BranchPoint, TimelineManifest, TimelineState
from argon.storage.objectstore.snapshot_plan import (
    CHUNK_SIZE,
    BucketListing,
    FileEntry,
    SnapshotRecord,
    blob_key,
    blob_of_key,
    chunk_count,
    pending_snapshots,
    plan_bucket_gc,
    plan_chunk_uploads,
    snapshot_key,
    snapshot_of_key,
    timeline_manifest_key,
    timeline_of_key,
)
from argon.storage.objectstore.metadata_copy import METADATA_KEY, MetadataCopy, restore_metadata
from argon.storage.objectstore.snapshot_restore import first_start_target, own_pg_timelines
from argon.storage.objectstore.snapshot_sync import wal_segment_of_key
from argon.storage.snapshots import Snapshot

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def h(n: int) -> str:
    return f"{n:064x}"


def snap(tl: str, lsn: int) -> Snapshot:
    return Snapshot(tl, Lsn(lsn), 1, T0, "backup")


def f(path: str, *chunks: int, size: int | None = None) -> FileEntry:
    size = len(chunks) * CHUNK_SIZE if size is None else size
    return FileEntry(path, False, 0o600, size, tuple(h(c) for c in chunks))


# -- keys -------------------------------------------------------------------------------

def test_keys_round_trip() -> None:
    assert blob_of_key(blob_key(h(7))) == h(7)
    s = snap("tl-a", 0x1234)
    assert snapshot_of_key(snapshot_key("tl-a", s.dirname)) == ("tl-a", "0000000000001234")
    assert timeline_of_key(timeline_manifest_key("tl-a")) == "tl-a"
    assert blob_of_key("snapshots/blobs/xx/nothash.zst") is None
    assert snapshot_of_key(timeline_manifest_key("tl-a")) is None


def test_blob_key_refuses_a_non_digest() -> None:
    with pytest.raises(InvalidInput):
        blob_key("../../etc/passwd")


def test_chunk_count() -> None:
    assert [chunk_count(n) for n in (0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE)] == \
        [0, 1, 1, 2, 3]


# -- records ----------------------------------------------------------------------------

def test_record_round_trip() -> None:
    rec = SnapshotRecord(snap("tl", 0x10), (
        FileEntry("base", True, 0o700), f("base/1", 1, 2, size=CHUNK_SIZE + 5),
        FileEntry("empty", False, 0o600, 0, ())))
    again = SnapshotRecord.from_json(rec.to_json())
    assert again == rec
    assert rec.blobs() == {h(1), h(2)}
    assert rec.stored_bytes() == CHUNK_SIZE + 5


@pytest.mark.parametrize("bad", [
    {"path": "/etc/passwd", "mode": 0o600, "size": 0, "chunks": []},
    {"path": "base/../../x", "mode": 0o600, "size": 0, "chunks": []},
    {"path": "a", "mode": 0o600, "size": 10, "chunks": []},          # chunks missing
    {"path": "a", "mode": 0o600, "size": 1, "chunks": ["zz"]},       # not a digest
    {"path": "", "dir": True, "mode": 0o700},
])
def test_record_refuses_unsafe_or_inconsistent_entries(bad: dict[str, object]) -> None:
    data = SnapshotRecord(snap("tl", 1), ()).to_json()
    data["entries"] = [bad]
    with pytest.raises(InvalidInput):
        SnapshotRecord.from_json(data)


def test_record_refuses_another_format_or_chunk_size() -> None:
    data = SnapshotRecord(snap("tl", 1), ()).to_json()
    with pytest.raises(InvalidInput):
        SnapshotRecord.from_json({**data, "format": 99})
    with pytest.raises(InvalidInput):
        SnapshotRecord.from_json({**data, "chunk_size": 4096})


# -- chunk uploads ------------------------------------------------------------------------

def test_first_upload_takes_every_chunk_once() -> None:
    entries = [f("a", 1, 2, size=CHUNK_SIZE + 10), f("b", 2), f("c", 3, size=7)]
    plan = plan_chunk_uploads(entries, set())
    assert [(c.digest, c.path, c.offset, c.length) for c in plan.chunks] == [
        (h(1), "a", 0, CHUNK_SIZE), (h(2), "a", CHUNK_SIZE, 10), (h(3), "c", 0, 7)]
    assert plan.reused == 1            # b's chunk is a's second one
    assert plan.new_bytes == CHUNK_SIZE + 17


def test_second_upload_takes_only_changed_chunks() -> None:
    first = [f("a", 1, 2), f("b", 3)]
    second = [f("a", 1, 9), f("b", 3), f("new", 10, size=5)]
    have = {c.digest for c in plan_chunk_uploads(first, set()).chunks}
    plan = plan_chunk_uploads(second, have)
    assert [c.digest for c in plan.chunks] == [h(9), h(10)]
    assert plan.reused == 2


def test_directories_and_empty_files_upload_nothing() -> None:
    plan = plan_chunk_uploads([FileEntry("d", True, 0o700), f("e", size=0)], set())
    assert plan.chunks == () and plan.reused == 0 and plan.new_bytes == 0


@pytest.mark.parametrize("n_files,n_have", list(itertools.product(range(4), range(4))))
def test_uploads_cover_exactly_what_is_missing(n_files: int, n_have: int) -> None:
    entries = [f(f"f{i}", i, i + 1, (i * 7) % 5) for i in range(n_files)]
    have = {h(i) for i in range(n_have)}
    plan = plan_chunk_uploads(entries, have)
    wanted = {c for e in entries for c in e.chunks}
    assert {c.digest for c in plan.chunks} == wanted - have
    assert len(plan.chunks) == len({c.digest for c in plan.chunks})


# -- pending snapshots ----------------------------------------------------------------------

def test_pending_snapshots_newest_first_per_timeline() -> None:
    local = {"b": [snap("b", 1), snap("b", 5)], "a": [snap("a", 1), snap("a", 2), snap("a", 3)]}
    uploaded = {"a": {snap("a", 2).dirname}}
    assert [(s.timeline_id, int(s.lsn)) for s in pending_snapshots(local, uploaded)] == [
        ("a", 3), ("a", 1), ("b", 5), ("b", 1)]
    everything = {tl: {s.dirname for s in ss} for tl, ss in local.items()}
    assert pending_snapshots(local, everything) == []


# -- bucket GC ------------------------------------------------------------------------------

def listing(records: dict[str, dict[int, set[int]]], blobs: set[int],
            others: dict[str, list[str]] | None = None) -> BucketListing:
    recs = {tl: {snap(tl, lsn).dirname: frozenset(h(b) for b in bl)
                 for lsn, bl in by.items()} for tl, by in records.items()}
    keys = others if others is not None else {tl: [timeline_manifest_key(tl)] for tl in records}
    return BucketListing(recs, keys, frozenset(h(b) for b in blobs))


def test_gc_keeps_everything_referenced() -> None:
    lst = listing({"a": {1: {1, 2}, 2: {2, 3}}}, {1, 2, 3})
    plan = plan_bucket_gc(lst, {"a"}, {})
    assert len(plan) == 0


def test_gc_drops_expired_snapshot_then_its_own_blobs() -> None:
    lst = listing({"a": {1: {1, 2}, 2: {2, 3}}}, {1, 2, 3})
    plan = plan_bucket_gc(lst, {"a"}, {"a": {snap("a", 1).dirname}})
    assert plan.records == [snapshot_key("a", snap("a", 1).dirname)]
    assert plan.blobs == [blob_key(h(1))]     # 2 is still needed by snapshot 2
    assert plan.timeline_keys == []


def test_gc_deleted_timeline_goes_whole_manifest_last() -> None:
    tl_keys = {"a": [timeline_manifest_key("a")],
               "gone": [timeline_manifest_key("gone"), "snapshots/timelines/gone/samples.tsv",
                        "timelines/gone/wal/000000010000000000000001"]}
    lst = listing({"a": {1: {1}}, "gone": {1: {1, 2}, 7: {3}}}, {1, 2, 3}, tl_keys)
    plan = plan_bucket_gc(lst, {"a"}, {})
    assert plan.records == [snapshot_key("gone", snap("gone", 1).dirname),
                            snapshot_key("gone", snap("gone", 7).dirname)]
    assert plan.timeline_keys[-1] == timeline_manifest_key("gone")
    assert set(plan.timeline_keys) == set(tl_keys["gone"])
    assert plan.blobs == [blob_key(h(2)), blob_key(h(3))]   # 1 is shared with a


def test_gc_without_a_live_set_deletes_no_timeline() -> None:
    lst = listing({"a": {1: {1}}, "b": {1: {2}}}, {1, 2, 9})
    plan = plan_bucket_gc(lst, None, {})
    assert plan.records == [] and plan.timeline_keys == []
    assert plan.blobs == [blob_key(h(9))]    # an orphan left by an interrupted pass


def test_gc_finishes_a_half_done_pass() -> None:
    """A pass that deleted the record but crashed before the blobs: the next pass,
    seeing only the bucket, deletes exactly the blobs left behind."""
    before = listing({"a": {1: {1, 2}, 2: {2}}}, {1, 2})
    first = plan_bucket_gc(before, {"a"}, {"a": {snap("a", 1).dirname}})
    after_crash = listing({"a": {2: {2}}}, {1, 2})   # record gone, blobs still there
    second = plan_bucket_gc(after_crash, {"a"}, {})
    assert second.blobs == first.blobs == [blob_key(h(1))]
    assert second.records == []


def test_gc_timeline_with_only_keys_left_is_finished() -> None:
    """A deleted timeline whose records went in an earlier pass still has its keys."""
    lst = listing({}, set(), {"gone": [timeline_manifest_key("gone")]})
    plan = plan_bucket_gc(lst, set(), {})
    assert plan.timeline_keys == [timeline_manifest_key("gone")]


def test_gc_expired_wal_comes_after_records() -> None:
    lst = listing({"a": {1: {1}, 2: {1}}}, {1})
    plan = plan_bucket_gc(lst, {"a"}, {"a": {snap("a", 1).dirname}},
                          expired_wal=["timelines/a/wal/B", "timelines/a/wal/A"])
    assert plan.timeline_keys == ["timelines/a/wal/A", "timelines/a/wal/B"]
    assert plan.blobs == []


@pytest.mark.parametrize("mask", range(16))
def test_gc_never_deletes_a_blob_a_kept_record_needs(mask: int) -> None:
    recs = {"a": {1: {1, 2}, 2: {2, 3}}, "b": {1: {3, 4}, 2: {5}}}
    live = {"a", "b"} if mask & 1 else {"a"}
    expired = {"a": {snap("a", 1).dirname} if mask & 2 else set(),
               "b": {snap("b", 2).dirname} if mask & 4 else set()}
    lst = listing(recs, {1, 2, 3, 4, 5, 6} if mask & 8 else {1, 2, 3, 4, 5})
    plan = plan_bucket_gc(lst, live, expired)
    dropped = set(plan.records)
    kept_refs = {h(b) for tl, by in recs.items() for lsn, bl in by.items()
                 if snapshot_key(tl, snap(tl, lsn).dirname) not in dropped for b in bl}
    deleted = {blob_of_key(k) for k in plan.blobs}
    assert not deleted & kept_refs
    assert deleted | kept_refs == {h(b) for b in (range(1, 7) if mask & 8 else range(1, 6))}


# -- the first start of a recovered timeline ---------------------------------------------------



def manifest(bp: BranchPoint | None, pending: bool = False, exact: bool = True
             ) -> TimelineManifest:
    return TimelineManifest("tl", "parent" if bp else None, bp, TimelineState.READY, "copy",
                            T0, recovery_pending=pending, branch_lsn_exact=exact)


def test_wal_keys_name_their_timeline_and_segment() -> None:
    assert wal_segment_of_key("timelines/tl/wal/000000020000000000000011") == \
        ("tl", "000000020000000000000011")
    assert wal_segment_of_key("timelines/tl/wal/000000020000000000000011.partial") == \
        ("tl", "000000020000000000000011")
    assert wal_segment_of_key("timelines/tl/wal/00000002.history") is None
    assert wal_segment_of_key("snapshots/timelines/tl/manifest.json") is None


def test_own_pg_timelines_reads_segments_and_history_files() -> None:
    keys = ["timelines/a/wal/000000010000000000000003",
            "timelines/a/wal/00000003.history",
            "timelines/a/wal/000000020000000000000004.partial",
            "timelines/a/wal/000000010000000000000003.00000028.backup",
            "timelines/b/wal/000000090000000000000001"]
    assert own_pg_timelines(keys, "a") == {1, 2, 3}
    assert own_pg_timelines(keys, "c") == set()


def test_a_root_replays_to_the_end_of_its_newest_timeline() -> None:
    t = first_start_target(manifest(None), {1, 2}, 1)
    assert t.kind is TargetKind.END and t.timeline == 2
    t = first_start_target(manifest(None), set(), 1)   # nothing archived: the snapshot's
    assert t.kind is TargetKind.END and t.timeline == 1


def test_a_promoted_branch_replays_its_own_timeline() -> None:
    bp = BranchPoint(Lsn(0x1100120), 1, T0)
    t = first_start_target(manifest(bp), {2}, 1)
    assert t.kind is TargetKind.END and t.timeline == 2


@pytest.mark.parametrize("pending,own", [(True, {2}), (True, set()), (False, set())])
def test_a_branch_that_never_promoted_stops_at_its_branch_point(
        pending: bool, own: set[int]) -> None:
    bp = BranchPoint(Lsn(0x1100120), 1, T0)
    t = first_start_target(manifest(bp, pending=pending), own, 1)
    assert t.kind is TargetKind.LSN and t.lsn == Lsn(0x1100120) and t.timeline == 1
    assert not t.inclusive
    t = first_start_target(manifest(bp, pending=pending, exact=False), own, 1)
    assert t.kind is TargetKind.TIME and t.time == T0 and t.timeline == 1


# -- the metadata copy ----------------------------------------------------------------------

class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts = 0

    def put_bytes(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        self.objects[key] = data
        self.puts += 1

    def get_bytes(self, key: str) -> bytes:
        return self.objects[key]


def test_metadata_copy_is_consistent_and_uploaded_only_when_changed(tmp_path: Path) -> None:
    db = tmp_path / "argon.db"
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("CREATE TABLE branches (id text)")
        c.execute("INSERT INTO branches VALUES ('br-1')")
    store = MemoryStore()
    copy = MetadataCopy(db, min_seconds=3600)
    assert copy.maybe_upload(store) is True
    assert copy.maybe_upload(store) is False            # unchanged
    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO branches VALUES ('br-2')")
    assert copy.maybe_upload(store) is False            # changed, but too soon
    assert copy.maybe_upload(store, force=True) is True  # at stop: whatever the interval
    assert store.puts == 2
    restore_metadata(store, tmp_path / "restored.db")
    with sqlite3.connect(tmp_path / "restored.db") as c:
        assert c.execute("SELECT id FROM branches ORDER BY id").fetchall() == [("br-1",), ("br-2",)]
    assert (tmp_path / "restored.db").stat().st_mode & 0o777 == 0o600
    assert store.objects.keys() == {METADATA_KEY}


def test_no_metadata_file_uploads_nothing(tmp_path: Path) -> None:
    store = MemoryStore()
    assert MetadataCopy(tmp_path / "absent.db").maybe_upload(store, force=True) is False
    assert store.puts == 0
