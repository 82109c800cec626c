"""``argon start --object-store``: turn WAL archiving to the bucket on for a ``Storage``."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from argon.storage.manifest import MANIFEST_NAME, TimelineState, read_manifest
from argon.storage.objectstore.archive_status import ArchiveWatch
from argon.storage.objectstore.backfill import backfill
from argon.storage.objectstore.bucket import Bucket
from argon.storage.objectstore.kit import prepare_bucket_wal

if TYPE_CHECKING:
    from argon.storage.timelines import Storage

logger = logging.getLogger(__name__)


def use_object_store(storage: Storage, home: Path, url: str) -> ArchiveWatch:
    """Check the bucket and lay out the WAL kit (``ObjectStoreError`` when it fails), then
    give every timeline that is not mid-recovery the bucket's archive settings (they take
    effect at its compute's next start), and start watching the archivers after copying
    to the bucket what only the local archives hold (in the background)."""
    storage.bucket_wal = prepare_bucket_wal(home, url, storage.owner)
    rewritten = 0
    for entry in os.scandir(storage.root):
        tdir = Path(entry.path)
        if not (tdir / MANIFEST_NAME).is_file() or not (tdir / "pgdata").is_dir():
            continue
        try:
            manifest = read_manifest(tdir)
        except Exception:  # noqa: BLE001 - repair deals with unreadable manifests
            continue
        if manifest.state is TimelineState.READY and not manifest.recovery_pending:
            storage.recovery_finished(manifest.id)   # rewrites argon.storage.conf only
            rewritten += 1
    logger.info("object store %s: archive settings of %d timeline(s) checked", url, rewritten)
    watch = ArchiveWatch(storage.root, storage.bucket_wal.status_dir, url,
                         first=lambda: backfill(storage.root, Bucket(url)))
    watch.start()
    return watch

