"""Keeping the bucket's copy of every timeline's snapshots current, and GC'ing it.

``SnapshotSync.sync_once`` compares the home with the bucket and uploads what the bucket
lacks: each timeline's manifest and samples when they changed, each snapshot the bucket
has no record of (only the chunks it lacks, then the record), and the home's keys.  A
background thread runs it after every snapshot (``wake``) and every few seconds, so
clients never wait for it; ``status`` is what /metrics and ``argon status`` report.

``gc`` applies the history GC's rule (storage/gc.py) to the bucket's own snapshots and
WAL, and deletes what deleted timelines left, in the crash-safe order of
``snapshot_plan.plan_bucket_gc``.  Both run in the sync thread (``run_gc`` hands the GC
to it), so a GC never sees the chunks of a record still being uploaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from argon.errors import ArgonError
from argon.storage.gc import TimelineFacts, plan_gc
from argon.storage.objectstore.metadata_copy import MetadataCopy
from argon.storage.objectstore.snapshot_files import BlobStore, hash_tree, upload_chunks
from argon.storage.objectstore.snapshot_plan import (
    TIMELINES_PREFIX,
    BucketListing,
    SnapshotRecord,
    blob_of_key,
    pending_snapshots,
    plan_bucket_gc,
    plan_chunk_uploads,
    samples_key,
    secret_key,
    snapshot_key,
    snapshot_of_key,
    timeline_manifest_key,
    timeline_of_key,
)
from argon.storage.pitr import lsn_at
from argon.storage.snapshots import SAMPLES_NAME, Snapshot, snapshot_pgdata
from argon.storage.wal import DEFAULT_SEGMENT_SIZE, is_segment_name, segment_number

if TYPE_CHECKING:
    from argon.storage.timelines import Storage

logger = logging.getLogger(__name__)

SYNC_SECONDS = 5.0
MAX_RETRY_SECONDS = 60.0
# WAL archived by the WAL archive (archive.py) under these keys
WAL_PREFIX = "timelines/"


class ListingStore(BlobStore, Protocol):
    def list(self, prefix: str = "") -> list[Any]: ...
    def delete_many(self, keys: Any) -> None: ...


@dataclass
class SyncStatus:
    """What the last pass found and did (read by /metrics and ``argon status``)."""

    backlog: int = 0                  # snapshots not in the bucket yet
    passes: int = 0                   # passes finished since start
    snapshots_uploaded: int = 0
    chunks_uploaded: int = 0
    chunks_reused: int = 0
    bytes_uploaded: int = 0           # raw bytes of the chunks uploaded
    gc_deleted: int = 0
    last_error: str | None = None
    last_pass_at: float | None = None  # time.time()
    in_sync: bool = False             # the last pass left nothing to upload

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _BucketState:
    records: dict[str, dict[str, frozenset[str]]] = field(default_factory=dict)
    blobs: set[str] = field(default_factory=set)
    uploaded_files: dict[str, str] = field(default_factory=dict)  # key -> sha256 of content


def wal_segment_of_key(key: str) -> tuple[str, str] | None:
    """``(timeline_id, segment name)`` of a WAL key (``timelines/<tl>/wal/<seg>[.ext]``)."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "timelines" or parts[2] != "wal":
        return None
    name = parts[3].split(".")[0]
    return (parts[1], name) if is_segment_name(name) else None


class SnapshotSync:
    def __init__(self, store: ListingStore, storage: Storage, secrets_dir: Path | None,
                 interval: float = SYNC_SECONDS, metadata: MetadataCopy | None = None) -> None:
        self.store = store
        self.storage = storage
        self.secrets_dir = secrets_dir
        self.metadata = metadata   # the home's SQLite metadata, when it lives there
        self.interval = interval
        self.status = SyncStatus()
        self._state: _BucketState | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._gc_requests: list[tuple[list[str], dict[str, datetime], set[str]]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- the background thread --------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="snapshot-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self.metadata is not None:   # the last changes before a clean stop
            try:
                self.metadata.maybe_upload(self.store, force=True)
            except Exception as exc:  # noqa: BLE001 - stopping anyway
                logger.warning("the metadata copy was not uploaded at stop: %s", exc)

    def wake(self) -> None:
        """A snapshot was taken or a timeline changed: sync soon, not at the next tick."""
        self._wake.set()

    def run_gc(self, timeline_ids: list[str], window_starts: dict[str, datetime],
               pinned: set[str]) -> None:
        """Queue a bucket GC over these (every live) timelines for the sync thread."""
        with self._lock:
            self._gc_requests = [(list(timeline_ids), dict(window_starts), set(pinned))]
        self._wake.set()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.sync_once()
                with self._lock:
                    requests, self._gc_requests = self._gc_requests, []
                for timelines, starts, pinned in requests:
                    self.gc(timelines, starts, pinned)
                self.status.last_error = None
                failures = 0
            except Exception as exc:  # noqa: BLE001 - retried at the next pass
                message = exc.message if isinstance(exc, ArgonError) else str(exc)
                if message != self.status.last_error:
                    logger.warning("snapshot upload to the bucket failed (retrying, at "
                                   "most every %.0f s): %s", MAX_RETRY_SECONDS, message)
                self.status.last_error = message
                self.status.in_sync = False
                self._state = None     # re-read the bucket next time: it may have changed
                failures += 1
            # during an outage, back off: each retry hashes the pending snapshot again
            self._wake.wait(min(MAX_RETRY_SECONDS, self.interval * 2 ** min(failures, 8)))

    # -- one pass -------------------------------------------------------------------------

    def _bucket(self) -> _BucketState:
        if self._state is None:
            state = _BucketState()
            for obj in self.store.list("snapshots/"):
                if (digest := blob_of_key(obj.key)) is not None:
                    state.blobs.add(digest)
                elif (snap := snapshot_of_key(obj.key)) is not None:
                    state.records.setdefault(snap[0], {})[snap[1]] = frozenset()
            # the blobs each record references: needed by the GC only, read lazily there
            self._state = state
        return self._state

    def local_timelines(self) -> list[str]:
        root = self.storage.root
        out = []
        for entry in os.scandir(root):
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                if self.storage.exists(entry.name):
                    out.append(entry.name)
            except ArgonError:
                continue
        return sorted(out)

    def sync_once(self) -> SyncStatus:
        state = self._bucket()
        timelines = self.local_timelines()
        local: dict[str, list[Snapshot]] = {}
        for tl in timelines:
            tdir = self.storage.root / tl
            self._put_if_changed(state, timeline_manifest_key(tl), tdir / "manifest.json")
            self._put_if_changed(state, samples_key(tl), tdir / SAMPLES_NAME)
            local[tl] = self.storage.snapshots(tl)
        self._put_secrets(state)
        if self.metadata is not None:
            self.metadata.maybe_upload(self.store)
        pending = pending_snapshots(local, {tl: set(r) for tl, r in state.records.items()})
        self.status.backlog = len(pending)
        for snap in pending:
            if self._stop.is_set():
                return self.status   # stopping: the rest goes up at the next start
            self._upload_snapshot(state, snap)
            self.status.backlog -= 1
        self.status.passes += 1
        self.status.last_pass_at = time.time()
        self.status.in_sync = True
        return self.status

    def _put_if_changed(self, state: _BucketState, key: str, path: Path) -> None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        digest = hashlib.sha256(data).hexdigest()
        if state.uploaded_files.get(key) == digest:
            return
        self.store.put_bytes(key, data)
        state.uploaded_files[key] = digest

    def _put_secrets(self, state: _BucketState) -> None:
        """The home's keys: without admin.key no compute of a recovered data directory
        accepts Argon's login, without fernet.key no password can be revealed."""
        if self.secrets_dir is None or not self.secrets_dir.is_dir():
            return
        for entry in sorted(os.scandir(self.secrets_dir), key=lambda e: e.name):
            if entry.is_file() and not entry.name.endswith(".tmp"):
                self._put_if_changed(state, secret_key(entry.name), Path(entry.path))

    def _upload_snapshot(self, state: _BucketState, snap: Snapshot) -> None:
        tdir = self.storage.root / snap.timeline_id
        pgdata = snapshot_pgdata(tdir, snap)
        try:
            entries = hash_tree(pgdata)
        except FileNotFoundError:
            return   # the history GC removed it meanwhile
        plan = plan_chunk_uploads(entries, state.blobs)

        def uploaded(c: Any) -> None:
            state.blobs.add(c.digest)
            self.status.chunks_uploaded += 1
            self.status.bytes_uploaded += c.length

        try:
            upload_chunks(self.store, pgdata, plan.chunks, uploaded)
        except FileNotFoundError:
            return
        record = SnapshotRecord(snap, tuple(entries))
        # the record last: a record in the bucket always has all its chunks
        self.store.put_bytes(record.key, json.dumps(record.to_json()).encode())
        state.records.setdefault(snap.timeline_id, {})[snap.dirname] = record.blobs()
        self.status.snapshots_uploaded += 1
        self.status.chunks_reused += plan.reused
        logger.info("uploaded snapshot %s of %s: %d new chunks (%d bytes), %d reused",
                    snap.lsn, snap.timeline_id, len(plan.chunks), plan.new_bytes, plan.reused)

    # -- GC ---------------------------------------------------------------------------------

    def gc(self, timeline_ids: list[str], window_starts: Mapping[str, datetime],
           pinned: set[str]) -> int:
        """Delete from the bucket what no kept snapshot, window or timeline needs."""
        state = self._bucket()
        listing, wal = self._listing(state)
        facts = {}
        # a timeline still on this disk is live whatever the metadata says (a fresh
        # metadata database pointed at an old bucket must not empty it)
        live = set(timeline_ids) | set(self.local_timelines())
        for tl in timeline_ids:
            snaps = [self._record_snapshot(tl, d) for d in listing.records.get(tl, {})]
            segs = wal.get(tl, {})
            seg_size = self._segment_size(tl)
            start = window_starts.get(tl)
            samples = self.storage.samples(tl) if self.storage.exists(tl) else []
            manifest = self.storage.manifest(tl) if self.storage.exists(tl) else None
            facts[tl] = TimelineFacts(
                id=tl, parent_id=manifest.parent_id if manifest else None,
                branch_lsn=manifest.branch_point.lsn if manifest and manifest.branch_point
                else None,
                snapshots=[s for s in snaps if s is not None],
                segments=[(name, segment_number(name, seg_size)[1]) for name in sorted(segs)],
                window_start_lsn=lsn_at(samples, start) if start is not None else None,
                segment_size=seg_size,
                pinned=tl in pinned or manifest is None)
        history = plan_gc(facts)
        expired: dict[str, set[str]] = {}
        expired_wal: list[str] = []
        for d in history.deletions:
            if d.snapshot is not None:
                expired.setdefault(d.timeline_id, set()).add(d.snapshot.dirname)
            elif d.segment is not None:
                expired_wal.extend(wal.get(d.timeline_id, {}).get(d.segment, []))
        plan = plan_bucket_gc(listing, live, expired, expired_wal)
        if not len(plan):
            return 0
        # records, then the timelines' other keys, then blobs: see plan_bucket_gc
        self.store.delete_many(plan.records)
        for key in plan.records:
            if (snap := snapshot_of_key(key)) is not None:
                state.records.get(snap[0], {}).pop(snap[1], None)
        self.store.delete_many(plan.timeline_keys)
        for key in plan.timeline_keys:
            state.uploaded_files.pop(key, None)
        self.store.delete_many(plan.blobs)
        for key in plan.blobs:
            state.blobs.discard(blob_of_key(key) or "")
        for tl in set(listing.records) - live:
            state.records.pop(tl, None)
        self.status.gc_deleted += len(plan)
        logger.info("bucket gc deleted %d records, %d timeline objects and %d chunks",
                    len(plan.records), len(plan.timeline_keys), len(plan.blobs))
        return len(plan)

    def _listing(self, state: _BucketState
                 ) -> tuple[BucketListing, dict[str, dict[str, list[str]]]]:
        records: dict[str, dict[str, frozenset[str]]] = {}
        others: dict[str, list[str]] = {}
        blobs: set[str] = set()
        for obj in self.store.list("snapshots/"):
            if (digest := blob_of_key(obj.key)) is not None:
                blobs.add(digest)
            elif (snap := snapshot_of_key(obj.key)) is not None:
                known = state.records.get(snap[0], {}).get(snap[1])
                if not known:
                    known = self._read_record(obj.key).blobs()
                    state.records.setdefault(snap[0], {})[snap[1]] = known
                records.setdefault(snap[0], {})[snap[1]] = known
            elif obj.key.startswith(TIMELINES_PREFIX) and (tl := timeline_of_key(obj.key)):
                others.setdefault(tl, []).append(obj.key)
        wal: dict[str, dict[str, list[str]]] = {}
        for obj in self.store.list(WAL_PREFIX):
            parts = obj.key.split("/")
            if len(parts) >= 2 and parts[0] == "timelines":
                others.setdefault(parts[1], []).append(obj.key)
            if (seg := wal_segment_of_key(obj.key)) is not None:
                wal.setdefault(seg[0], {}).setdefault(seg[1], []).append(obj.key)
        return BucketListing(records, others, frozenset(blobs)), wal

    def _read_record(self, key: str) -> SnapshotRecord:
        return SnapshotRecord.from_json(json.loads(self.store.get_bytes(key)))

    def _record_snapshot(self, tl: str, dirname: str) -> Snapshot | None:
        if self.storage.exists(tl):
            for s in self.storage.snapshots(tl):
                if s.dirname == dirname:
                    return s
        try:
            return self._read_record(snapshot_key(tl, dirname)).snapshot
        except (ArgonError, ValueError):
            return None

    def _segment_size(self, tl: str) -> int:
        """The timeline's WAL segment size (projects use 1 MiB segments) from a local
        segment; the default (which keeps more WAL, never less) when none is found."""
        for d in (self.storage.archive_dir(tl), self.storage.pgdata(tl) / "pg_wal"):
            try:
                for entry in os.scandir(d):
                    if is_segment_name(entry.name) and entry.is_file():
                        return entry.stat().st_size or DEFAULT_SEGMENT_SIZE
            except OSError:
                continue
        return DEFAULT_SEGMENT_SIZE


def metric_families(status: SyncStatus, metadata_at: float | None = None) -> Iterator[Any]:
    """/metrics: the snapshot upload's backlog and totals since start."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: PLC0415

    yield GaugeMetricFamily("argon_object_store_snapshot_backlog",
                            "Snapshots not yet in the bucket (at the last pass)",
                            value=status.backlog)
    yield GaugeMetricFamily("argon_object_store_snapshots_in_sync",
                            "1 when the last pass left nothing to upload", value=int(status.in_sync))
    yield CounterMetricFamily("argon_object_store_snapshot_passes",
                              "Upload passes finished", value=status.passes)
    yield CounterMetricFamily("argon_object_store_snapshots_uploaded",
                              "Snapshots uploaded", value=status.snapshots_uploaded)
    yield CounterMetricFamily("argon_object_store_snapshot_chunks_uploaded",
                              "Chunks uploaded (new content)", value=status.chunks_uploaded)
    yield CounterMetricFamily("argon_object_store_snapshot_chunks_reused",
                              "Chunks already in the bucket", value=status.chunks_reused)
    yield CounterMetricFamily("argon_object_store_snapshot_bytes_uploaded",
                              "Raw bytes of the chunks uploaded", value=status.bytes_uploaded)
    yield CounterMetricFamily("argon_object_store_gc_deleted",
                              "Bucket objects deleted by the GC", value=status.gc_deleted)
    yield GaugeMetricFamily("argon_object_store_metadata_copy_timestamp_seconds",
                            "When the home's SQLite metadata was last copied to the bucket "
                            "(0: never, or the metadata lives elsewhere)",
                            value=metadata_at or 0.0)
    yield GaugeMetricFamily("argon_object_store_snapshot_upload_failing",
                            "1 while the last pass failed", value=int(status.last_error is not None))


def attach_snapshot_sync(storage: Storage, url: str, secrets_dir: Path,
                         metadata_db: Path | None = None) -> SnapshotSync:
    """Give ``storage`` a snapshot uploader for the bucket at ``url`` (started by the
    platform with ``start()``, so that only a serving Argon uploads); ``metadata_db``:
    the home's SQLite metadata, copied to the bucket too."""
    from argon.storage.objectstore.bucket import Bucket  # noqa: PLC0415 - obstore import

    sync = SnapshotSync(Bucket(url), storage, secrets_dir,
                        metadata=MetadataCopy(metadata_db) if metadata_db else None)
    storage.snapshot_sync = sync
    return sync
