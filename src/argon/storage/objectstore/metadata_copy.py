"""A consistent copy of the home's SQLite metadata in the bucket, for ``argon recover``.

When the metadata is the home's own SQLite file (no ``--metadata-url``), it dies with
the disk like everything else.  The snapshot uploader then also keeps a copy in the
bucket: taken with SQLite's online backup API (a consistent picture even while Argon
writes; WAL-mode readers do not block the writer), compressed, put under one key.  It
is refreshed when the database changed, at most every ``MIN_SECONDS``, and once more
when Argon stops; ``argon recover`` without ``--metadata-url`` starts from it.

Its recovery point is therefore the metadata's, not the WAL's: changes of the last
``MIN_SECONDS`` plus one upload pass (``snapshot_sync.SYNC_SECONDS``) may be missing
after a recovery (a branch made just before the disk died may come back without its
metadata, or not at all); the rows inside each branch are bounded by the WAL archive.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Protocol

import zstandard

logger = logging.getLogger(__name__)

METADATA_KEY = "home/metadata/argon.db.zst"
MIN_SECONDS = 10.0


class PutStore(Protocol):
    def put_bytes(self, key: str, data: bytes, *, create_only: bool = False) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...


class MetadataCopy:
    def __init__(self, db: Path, min_seconds: float = MIN_SECONDS) -> None:
        self.db = db
        self.min_seconds = min_seconds
        self._seen: tuple[int, ...] | None = None
        self._last = float("-inf")   # time.monotonic(); a fresh boot is near 0
        self.uploads = 0
        self.last_upload_at: float | None = None   # time.time()

    def _stamp(self) -> tuple[int, ...]:
        out: list[int] = []
        for path in (self.db, self.db.with_name(self.db.name + "-wal")):
            try:
                st = os.stat(path)
                out += [st.st_mtime_ns, st.st_size]
            except FileNotFoundError:
                out += [0, 0]
        return tuple(out)

    def maybe_upload(self, store: PutStore, force: bool = False) -> bool:
        """Upload a fresh copy if the database changed (and, unless ``force``, the last
        upload is ``min_seconds`` old); True when one was uploaded."""
        if not self.db.is_file():
            return False
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        if not force and time.monotonic() - self._last < self.min_seconds:
            return False
        store.put_bytes(METADATA_KEY, zstandard.ZstdCompressor(level=3).compress(
            consistent_copy(self.db)))
        self._seen = stamp
        self._last = time.monotonic()
        self.uploads += 1
        self.last_upload_at = time.time()
        logger.debug("metadata copy uploaded to %s", METADATA_KEY)
        return True


def consistent_copy(db: Path) -> bytes:
    """The database's bytes as of one moment (SQLite's backup API, to a private temp)."""
    fd, tmp = tempfile.mkstemp(prefix=".metadata-copy-", dir=db.parent)
    os.close(fd)
    try:
        src = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
        return Path(tmp).read_bytes()
    finally:
        os.unlink(tmp)


def restore_metadata(store: PutStore, dest: Path) -> None:
    """Write the bucket's metadata copy to ``dest`` (0600), for ``argon recover``."""
    data = zstandard.ZstdDecompressor().decompress(store.get_bytes(METADATA_KEY))
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
