"""Moving one snapshot's files between a directory and the bucket.

``hash_tree`` reads a snapshot's pgdata into entries (chunk digests); ``upload_chunks``
puts the chunks a plan names; ``download_tree`` rebuilds a directory from a record.

Compression: ``zstandard`` (the bindings of the reference zstd library, kept by
Gregory Szorc, wheels for every platform).  At level 3 it compresses about three times
faster than zlib level 6 at a better ratio and decompresses several times faster; the
stdlib has no zstd before Python 3.14.  Recovery time is dominated by decompression
plus download, so the faster decoder is worth one pinned dependency.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import zstandard

from argon.pg import OsUser
from argon.storage.objectstore.snapshot_plan import (
    CHUNK_SIZE,
    ChunkUpload,
    FileEntry,
    SnapshotRecord,
    blob_key,
)

logger = logging.getLogger(__name__)

ZSTD_LEVEL = 3
TRANSFER_THREADS = 4    # uploads: obstore and zstd release the GIL, compression is CPU
DOWNLOAD_THREADS = 16   # downloads of a pgdata are mostly small files: latency-bound
SMALL_CHUNK = 1024 * 1024   # chunks up to this size are kept for repeats in one recovery


class BlobStore(Protocol):
    """The part of ``bucket.Bucket`` snapshots use (a fake implements it in tests)."""

    def put_bytes(self, key: str, data: bytes, *, create_only: bool = False) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...


def hash_tree(root: Path) -> list[FileEntry]:
    """Every directory and regular file under ``root``, sorted by path, files as chunk
    digests.  Snapshots are immutable once published, so one read is consistent."""
    out: list[FileEntry] = []
    root_s = str(root)
    for dirpath, dirnames, filenames in os.walk(root_s):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root_s)
        for name in dirnames:
            st = os.lstat(os.path.join(dirpath, name))
            out.append(FileEntry(_rel(rel_dir, name), True, stat.S_IMODE(st.st_mode)))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                logger.warning("snapshot upload skips %s: not a regular file", path)
                continue
            out.append(FileEntry(_rel(rel_dir, name), False, stat.S_IMODE(st.st_mode),
                                 st.st_size, _chunk_digests(path)))
    return sorted(out, key=lambda e: e.path)


def _rel(rel_dir: str, name: str) -> str:
    return name if rel_dir == "." else f"{rel_dir}/{name}"


def _chunk_digests(path: str) -> tuple[str, ...]:
    digests: list[str] = []
    with open(path, "rb", buffering=0) as f:
        while True:
            data = f.read(CHUNK_SIZE)
            if not data:
                break
            digests.append(hashlib.sha256(data).hexdigest())
    return tuple(digests)


def upload_chunks(store: BlobStore, root: Path, chunks: Iterable[ChunkUpload],
                  done: Callable[[ChunkUpload], None] = lambda c: None) -> None:
    """Compress and put each chunk (read again from its file, checked against its
    digest: a file changed since hashing fails the upload instead of storing a lie)."""
    def one(c: ChunkUpload) -> ChunkUpload:
        with open(root / c.path, "rb", buffering=0) as f:
            f.seek(c.offset)
            data = f.read(c.length)
        if hashlib.sha256(data).hexdigest() != c.digest:
            raise OSError(f"{root / c.path} changed while it was uploaded")
        store.put_bytes(blob_key(c.digest),
                        zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data))
        return c

    with ThreadPoolExecutor(TRANSFER_THREADS, thread_name_prefix="snap-up") as pool:
        for c in pool.map(one, chunks):
            done(c)


def download_tree(store: BlobStore, record: SnapshotRecord, dest: Path, owner: OsUser | None,
                  progress: Callable[[int], None] = lambda n: None,
                  cache: dict[str, bytes] | None = None) -> None:
    """Rebuild ``dest`` (which must not exist) from a snapshot record: directories and
    modes as recorded, files chunk by chunk (each chunk checked against its digest),
    everything handed to the Postgres account.  Not fsynced file by file: the caller
    syncs the filesystem once (``syncfs``) before the result is marked ready.

    ``cache`` (digest -> bytes) keeps small chunks for the other snapshots of the same
    recovery, which share most catalog files."""
    dest.mkdir(mode=0o700)
    chown = owner is not None and os.geteuid() == 0 and owner.uid != 0
    for e in record.entries:
        if e.is_dir:
            (dest / e.path).mkdir(mode=0o700, parents=True, exist_ok=True)
    jobs: list[tuple[FileEntry, int, str]] = []
    for e in record.entries:
        if e.is_dir:
            continue
        (dest / e.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(dest / e.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, e.size)
        finally:
            os.close(fd)
        jobs.extend((e, i, d) for i, d in enumerate(e.chunks))

    def one(job: tuple[FileEntry, int, str]) -> int:
        e, i, digest = job
        data = cache.get(digest) if cache is not None else None
        if data is None:
            data = zstandard.ZstdDecompressor().decompress(
                store.get_bytes(blob_key(digest)), max_output_size=CHUNK_SIZE)
            if hashlib.sha256(data).hexdigest() != digest:
                raise OSError(f"chunk {digest} of {e.path} is damaged in the bucket")
            if cache is not None and len(data) <= SMALL_CHUNK:
                cache[digest] = data
        fd = os.open(dest / e.path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, data, i * CHUNK_SIZE)
        finally:
            os.close(fd)
        return len(data)

    with ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix="snap-down") as pool:
        for n in pool.map(one, jobs):
            progress(n)
    # modes and owners last: a 0500 directory would refuse the files put into it
    for e in sorted(record.entries, key=lambda e: e.path.count("/"), reverse=True):
        path = dest / e.path
        os.chmod(path, e.mode)
        if chown:
            assert owner is not None
            os.chown(path, owner.uid, owner.gid)
    if chown:
        assert owner is not None
        os.chown(dest, owner.uid, owner.gid)
