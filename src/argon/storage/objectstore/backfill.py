"""The local archive's files that never reached the bucket, uploaded once at start.

A home that ran without ``--object-store`` (or a compute still running with the archive
settings it was started with) archived WAL locally only; the bucket must hold every
timeline's WAL for recovery from it.  At start, in the background, each local archive
file missing from its timeline's prefix goes up, through the same conditional upload as
the archive command's; a name the bucket holds already is never replaced.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from argon.storage.objectstore.bucket import Bucket
from argon.storage.objectstore.errors import ObjectStoreError
from argon.storage.objectstore.wal_archive import push_to_bucket
from argon.storage.objectstore.wal_commands import wal_key
from argon.storage.wal import is_history_name, is_segment_name

logger = logging.getLogger(__name__)


def _is_wal_file(name: str) -> bool:
    base = name.removesuffix(".partial")
    return is_segment_name(base) or is_history_name(name)


def backfill(root: Path, bucket: Bucket) -> int:
    """Upload what the local archives under ``root`` hold and the bucket lacks; returns
    how many files went up.  Stops at the first unreachable-bucket error (the archivers
    report that outage already)."""
    uploaded = 0
    try:
        timelines = sorted(e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False))
    except OSError:
        return 0
    for tl in timelines:
        archive = root / tl / "wal"
        try:
            local = sorted(n for n in os.listdir(archive) if _is_wal_file(n))
        except OSError:
            continue
        if not local:
            continue
        held = {o.key.rsplit("/", 1)[1] for o in bucket.list(wal_key(tl, ""))}
        for name in local:
            if name in held:
                continue
            try:
                push_to_bucket(bucket, wal_key(tl, name), archive / name)
                uploaded += 1
            except FileNotFoundError:
                continue   # removed by the local GC meanwhile
            except ObjectStoreError as exc:
                if exc.kind == "unreachable":
                    raise
                logger.warning("WAL file %s of timeline %s not copied to the bucket: %s",
                               name, tl, exc.message)
    if uploaded:
        logger.info("copied %d WAL file(s) that only the local archives held to %s",
                    uploaded, bucket.url)
    return uploaded
