"""Snapshots in the bucket: the key layout, the records, and the pure plans.

What lives in the bucket (keys relative to the ``--object-store`` prefix)::

    snapshots/blobs/<h[:2]>/<h>.zst          one chunk of file content, zstd-compressed,
                                             named by the SHA-256 of the raw chunk
    snapshots/timelines/<tl>/manifest.json   the timeline's manifest (storage/manifest.py)
    snapshots/timelines/<tl>/samples.tsv     its time -> LSN samples
    snapshots/timelines/<tl>/snap/<LSN>.json one snapshot: its snapshot.json and every
                                             entry of its pgdata (path, mode, size, chunks)
    home/secrets/<name>                      the home's keys (admin.key, fernet.key, ...)

Files are cut in fixed chunks (Postgres rewrites pages in place, so a 1 GB relation
segment with one changed page re-uploads one chunk, not the segment); a chunk whose hash
is in the bucket already is never uploaded again, so after the first snapshot only
what changed goes up.  A snapshot record is written only after all its chunks are in
the bucket, and the GC deletes records before the chunks they alone referenced: a
record in the bucket is always complete, and a GC interrupted half-way leaves only
unreferenced chunks, which the next pass finds and deletes.

Everything here is pure (values in, plans out) and tested without a bucket.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from argon.errors import InvalidInput
from argon.storage.snapshots import Snapshot

CHUNK_SIZE = 16 * 1024 * 1024
RECORD_FORMAT = 1

BLOBS_PREFIX = "snapshots/blobs/"
TIMELINES_PREFIX = "snapshots/timelines/"
SECRETS_PREFIX = "home/secrets/"
TIMELINE_MANIFEST = "manifest.json"
TIMELINE_SAMPLES = "samples.tsv"

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_BLOB_KEY_RE = re.compile(r"^snapshots/blobs/[0-9a-f]{2}/([0-9a-f]{64})\.zst$")
_SNAP_KEY_RE = re.compile(r"^snapshots/timelines/([A-Za-z0-9_-]+)/snap/([0-9A-F]{16})\.json$")
_TL_KEY_RE = re.compile(r"^snapshots/timelines/([A-Za-z0-9_-]+)/")


# -- keys -----------------------------------------------------------------------------

def blob_key(digest: str) -> str:
    if not _HASH_RE.match(digest):
        raise InvalidInput(f"{digest!r} is not a SHA-256 hex digest")
    return f"{BLOBS_PREFIX}{digest[:2]}/{digest}.zst"


def timeline_prefix(timeline_id: str) -> str:
    return f"{TIMELINES_PREFIX}{timeline_id}/"


def timeline_manifest_key(timeline_id: str) -> str:
    return timeline_prefix(timeline_id) + TIMELINE_MANIFEST


def samples_key(timeline_id: str) -> str:
    return timeline_prefix(timeline_id) + TIMELINE_SAMPLES


def snapshot_key(timeline_id: str, dirname: str) -> str:
    return f"{timeline_prefix(timeline_id)}snap/{dirname}.json"


def secret_key(name: str) -> str:
    return SECRETS_PREFIX + name


def blob_of_key(key: str) -> str | None:
    m = _BLOB_KEY_RE.match(key)
    return m.group(1) if m else None


def snapshot_of_key(key: str) -> tuple[str, str] | None:
    """``(timeline_id, snapshot dirname)`` of a snapshot record key."""
    m = _SNAP_KEY_RE.match(key)
    return (m.group(1), m.group(2)) if m else None


def timeline_of_key(key: str) -> str | None:
    m = _TL_KEY_RE.match(key)
    return m.group(1) if m else None


# -- records --------------------------------------------------------------------------

@dataclass(frozen=True)
class FileEntry:
    """One entry of a snapshot's pgdata: a directory, or a file as a list of chunks."""

    path: str                      # relative, '/'-separated
    is_dir: bool
    mode: int
    size: int = 0
    chunks: tuple[str, ...] = ()   # SHA-256 of each CHUNK_SIZE piece, in order

    def to_json(self) -> dict[str, Any]:
        if self.is_dir:
            return {"path": self.path, "dir": True, "mode": self.mode}
        return {"path": self.path, "mode": self.mode, "size": self.size,
                "chunks": list(self.chunks)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileEntry:
        path = str(data["path"])
        if path.startswith("/") or ".." in path.split("/") or not path:
            raise ValueError(f"unsafe path {path!r}")
        if data.get("dir"):
            return cls(path, True, int(data["mode"]))
        chunks = tuple(str(c) for c in data["chunks"])
        if any(not _HASH_RE.match(c) for c in chunks):
            raise ValueError(f"bad chunk hash in {path!r}")
        return cls(path, False, int(data["mode"]), int(data["size"]), chunks)


def chunk_count(size: int) -> int:
    """How many chunks a file of ``size`` bytes has (an empty file has none)."""
    return (size + CHUNK_SIZE - 1) // CHUNK_SIZE


@dataclass(frozen=True)
class SnapshotRecord:
    snapshot: Snapshot
    entries: tuple[FileEntry, ...]

    @property
    def key(self) -> str:
        return snapshot_key(self.snapshot.timeline_id, self.snapshot.dirname)

    def blobs(self) -> frozenset[str]:
        return frozenset(c for e in self.entries for c in e.chunks)

    def stored_bytes(self) -> int:
        return sum(e.size for e in self.entries)

    def to_json(self) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, "chunk_size": CHUNK_SIZE,
                "snapshot": self.snapshot.to_json(),
                "entries": [e.to_json() for e in self.entries]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SnapshotRecord:
        try:
            if data.get("format") != RECORD_FORMAT:
                raise ValueError(f"unknown snapshot record format {data.get('format')!r}")
            if int(data["chunk_size"]) != CHUNK_SIZE:
                raise ValueError(f"chunk size {data['chunk_size']} is not {CHUNK_SIZE}")
            entries = tuple(FileEntry.from_json(e) for e in data["entries"])
            for e in entries:
                if not e.is_dir and len(e.chunks) != chunk_count(e.size):
                    raise ValueError(f"{e.path}: {len(e.chunks)} chunks for {e.size} bytes")
            return cls(Snapshot.from_json(data["snapshot"]), entries)
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"snapshot record is invalid: {e}") from None


# -- upload planning ------------------------------------------------------------------

@dataclass(frozen=True)
class ChunkUpload:
    digest: str
    path: str        # relative path of a file that holds the chunk
    offset: int
    length: int


@dataclass(frozen=True)
class UploadPlan:
    chunks: tuple[ChunkUpload, ...]   # each digest once
    reused: int                       # chunks (with repeats) already in the bucket
    new_bytes: int


def plan_chunk_uploads(entries: Sequence[FileEntry], in_bucket: Iterable[str]) -> UploadPlan:
    """Which chunks of a hashed snapshot the bucket lacks (each new digest once)."""
    have = set(in_bucket)
    out: list[ChunkUpload] = []
    reused = 0
    new_bytes = 0
    for e in entries:
        for i, digest in enumerate(e.chunks):
            if digest in have:
                reused += 1
                continue
            have.add(digest)
            length = min(CHUNK_SIZE, e.size - i * CHUNK_SIZE)
            out.append(ChunkUpload(digest, e.path, i * CHUNK_SIZE, length))
            new_bytes += length
    return UploadPlan(tuple(out), reused, new_bytes)


def pending_snapshots(local: Mapping[str, Sequence[Snapshot]],
                      in_bucket: Mapping[str, set[str]]) -> list[Snapshot]:
    """Local snapshots the bucket has no record of, newest of each timeline first
    (the newest is what a recovery starts from), timelines in a stable order."""
    out: list[Snapshot] = []
    for tl in sorted(local):
        have = in_bucket.get(tl, set())
        missing = [s for s in local[tl] if s.dirname not in have]
        out.extend(sorted(missing, key=lambda s: int(s.lsn), reverse=True))
    return out


# -- bucket GC planning ---------------------------------------------------------------

@dataclass(frozen=True)
class BucketListing:
    """What the bucket holds, as the GC needs it."""

    records: Mapping[str, Mapping[str, frozenset[str]]]   # tl -> dirname -> its blobs
    timeline_keys: Mapping[str, Sequence[str]]            # tl -> every other key of it
    blobs: frozenset[str]


@dataclass
class BucketGcPlan:
    """Deletions in the order they must run: records first, then the timelines' other
    keys (their manifest last), then the blobs nothing kept references."""

    records: list[str] = field(default_factory=list)
    timeline_keys: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records) + len(self.timeline_keys) + len(self.blobs)


def plan_bucket_gc(listing: BucketListing, live: set[str] | None,
                   expired: Mapping[str, set[str]],
                   expired_wal: Sequence[str] = ()) -> BucketGcPlan:
    """What to delete from the bucket.

    ``live``: every timeline the metadata knows (None: unknown, so no timeline is
    deleted whole).  ``expired``: per live timeline, the snapshot dirnames the history
    GC planner (storage/gc.py ``plan_gc`` over the bucket's snapshots) let go;
    ``expired_wal``: WAL keys of live timelines it let go (deleted after the records
    of the snapshots that needed them).
    """
    plan = BucketGcPlan()
    kept_blobs: set[str] = set()
    gone: list[str] = []
    for tl in sorted(set(listing.records) | set(listing.timeline_keys)):
        records = listing.records.get(tl, {})
        if live is not None and tl not in live:
            gone.append(tl)
            for dirname in sorted(records):
                plan.records.append(snapshot_key(tl, dirname))
            plan.reasons.append(f"timeline {tl} was deleted")
            continue
        drop = expired.get(tl, set())
        for dirname, blobs in sorted(records.items()):
            if dirname in drop:
                plan.records.append(snapshot_key(tl, dirname))
                plan.reasons.append(f"snapshot {dirname} of {tl} left the history window")
            else:
                kept_blobs |= blobs
    plan.timeline_keys.extend(sorted(expired_wal))
    for tl in gone:
        keys = sorted(listing.timeline_keys.get(tl, ()))
        manifest = timeline_manifest_key(tl)
        plan.timeline_keys.extend(k for k in keys if k != manifest)
        if manifest in keys:
            plan.timeline_keys.append(manifest)   # last: it marks the timeline as present
    plan.blobs = sorted(blob_key(b) for b in listing.blobs - kept_blobs)
    return plan
