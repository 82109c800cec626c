"""Rebuilding a timeline on an empty disk from the bucket (``argon recover``).

For one timeline: its manifest and samples, every snapshot the bucket holds and its
whole WAL archive (downloaded, so that past points stay reachable with the local history
code, as before the disaster), and a data directory cloned from the newest snapshot the
chain allows, with ``recovery.signal`` and a target that makes the first start replay
the archived WAL to its end.  Ancestors must be restored first: the chain's snapshots
are read from the local disk.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from argon.errors import ArgonError, InvalidInput, NotFound
from argon.pg import Lsn, OsUser
from argon.storage.conf import RecoveryTarget, TargetKind, write_storage_conf
from argon.storage.manifest import TimelineManifest, TimelineState, write_manifest
from argon.storage.objectstore.snapshot_files import DOWNLOAD_THREADS, BlobStore, download_tree
from argon.storage.objectstore.snapshot_plan import (
    SECRETS_PREFIX,
    SnapshotRecord,
    samples_key,
    snapshot_of_key,
    timeline_manifest_key,
    timeline_prefix,
)
from argon.storage.objectstore.snapshot_sync import wal_segment_of_key
from argon.storage.pitr import PointInTime, choose_snapshot
from argon.storage.snapshots import SAMPLES_NAME, publish, snapshot_pgdata, staging_dir
from argon.storage.tree import CloneRules, clone_tree
from argon.storage.wal import is_history_name
from argon.storage.durability import syncfs

if TYPE_CHECKING:
    from argon.storage.timelines import Storage

logger = logging.getLogger(__name__)

_SNAPSHOT_RULES = CloneRules(keep_wal=True, keep_backup_files=True)
_END = Lsn(0xFFFFFFFFFFFFFFFF)


class ReadStore(BlobStore, Protocol):
    def list(self, prefix: str = "") -> list[Any]: ...
    def exists(self, key: str) -> bool: ...


@dataclass(frozen=True)
class RestoredTimeline:
    timeline_id: str
    snapshots: int
    bytes: int                 # bytes of files downloaded
    start_snapshot: str        # "<timeline>@<LSN>" the data directory was cloned from
    target: str                # what the first start replays to


def own_pg_timelines(keys: list[str], timeline_id: str) -> set[int]:
    """The Postgres timelines a timeline's own WAL archive in the bucket holds
    (segments and history files under ``timelines/<tl>/wal/``)."""
    found: set[int] = set()
    prefix = f"timelines/{timeline_id}/wal/"
    for key in keys:
        if not key.startswith(prefix):
            continue
        seg = wal_segment_of_key(key)
        if seg is not None:
            found.add(int(seg[1][:8], 16))
            continue
        name = key[len(prefix):].split(".history")[0] + ".history"
        if is_history_name(name):
            found.add(int(name[:8], 16))
    return found


def first_start_target(manifest: TimelineManifest, own_tlis: set[int],
                       snapshot_tli: int) -> RecoveryTarget:
    """Where the first start of a recovered timeline must stop (pure).

    A timeline that had promoted onto its own Postgres timeline replays to the end of
    that timeline's archived WAL.  One that never did (a branch that never started, or
    none of whose WAL reached the bucket) must stop where it left its parent, not run
    on along the parent's WAL.
    """
    bp = manifest.branch_point
    if bp is not None and (manifest.recovery_pending or not own_tlis):
        if manifest.branch_lsn_exact:
            return RecoveryTarget(TargetKind.LSN, lsn=bp.lsn, inclusive=False,
                                  timeline=bp.pg_timeline)
        return RecoveryTarget(TargetKind.TIME, time=bp.timestamp, inclusive=True,
                              timeline=bp.pg_timeline)
    return RecoveryTarget(TargetKind.END, timeline=max(own_tlis, default=snapshot_tli))


def restore_timeline(store: ReadStore, storage: Storage, timeline_id: str,
                     progress: Callable[[int], None] = lambda n: None,
                     cache: dict[str, bytes] | None = None) -> RestoredTimeline:
    """``cache``: small chunks already downloaded by this recovery (shared by the
    snapshots of every timeline: projects start from the same template)."""
    tdir = storage.root / timeline_id
    try:
        manifest = TimelineManifest.from_json(
            json.loads(store.get_bytes(timeline_manifest_key(timeline_id))))
    except (ArgonError, ValueError) as exc:
        raise NotFound(f"timeline {timeline_id} has no readable manifest in the bucket "
                       f"({exc}); it cannot be recovered") from None
    if manifest.state is not TimelineState.READY:
        raise InvalidInput(f"timeline {timeline_id} was still being created when it was "
                           "last uploaded; it cannot be recovered")
    if tdir.exists():
        raise InvalidInput(f"{tdir} exists already: recover into an empty home")
    tdir.mkdir(mode=0o711)
    os.chmod(tdir, 0o711)   # mkdir obeys the private umask; the Postgres account crosses it
    write_manifest(tdir, replace(manifest, state=TimelineState.CREATING))
    storage._make_owned_dir(tdir / "wal")  # noqa: SLF001 - storage's own helper
    keys = [o.key for o in store.list(timeline_prefix(timeline_id))]
    if samples_key(timeline_id) in keys:
        (tdir / SAMPLES_NAME).write_bytes(store.get_bytes(samples_key(timeline_id)))
    records = sorted((snapshot_of_key(k)[1] for k in keys if snapshot_of_key(k)),  # type: ignore[index]
                     reverse=True)
    downloaded = 0

    def counted(n: int) -> None:
        nonlocal downloaded
        downloaded += n
        progress(n)

    cache = {} if cache is None else cache
    for dirname in records:
        record = SnapshotRecord.from_json(json.loads(
            store.get_bytes(f"{timeline_prefix(timeline_id)}snap/{dirname}.json")))
        snap = replace(record.snapshot, timeline_id=timeline_id)
        staging = staging_dir(tdir, uuid.uuid4().hex[:12])
        download_tree(store, record, staging / "pgdata", storage.owner, counted, cache)
        publish(tdir, staging, snap)
    chain = storage.chain(timeline_id)
    start = choose_snapshot(chain, PointInTime(lsn=_END))
    if start is None:
        raise NotFound(f"no snapshot of timeline {timeline_id} or its ancestors is in the "
                       "bucket: it cannot be recovered")
    wal_keys = [o.key for o in store.list(f"timelines/{timeline_id}/wal/")]
    _download_wal(store, wal_keys, tdir / "wal", storage.owner, counted)
    target = first_start_target(manifest, own_pg_timelines(wal_keys, timeline_id),
                                start.pg_timeline)
    pgdata = tdir / "pgdata"
    clone_tree(snapshot_pgdata(storage.root / start.timeline_id, start), pgdata,
               storage.driver, storage.owner, _SNAPSHOT_RULES)
    write_storage_conf(pgdata, storage._conf(timeline_id, target), storage.owner)  # noqa: SLF001
    (pgdata / "recovery.signal").touch(mode=0o600)
    storage.owner.chown(pgdata / "recovery.signal")
    syncfs(tdir)
    write_manifest(tdir, replace(manifest, state=TimelineState.READY, recovery_pending=True))
    logger.info("recovered timeline %s from the bucket: %d snapshots, data from %s@%s, "
                "first start replays to %s", timeline_id, len(records), start.timeline_id,
                start.lsn, _describe(target))
    return RestoredTimeline(timeline_id, len(records), downloaded,
                            f"{start.timeline_id}@{start.lsn}", _describe(target))


def _download_wal(store: ReadStore, keys: list[str], archive: Path, owner: OsUser,
                  progress: Callable[[int], None]) -> None:
    """The timeline's whole WAL archive back on disk before any compute starts.

    Not only for speed: restore_command searches every local archive of the chain before
    the bucket, and Postgres timeline numbers repeat across Argon timelines (a parent
    recovered here promotes to 2 while its child's own 2 is only in the bucket), so a
    timeline whose own archive were left in the bucket could replay its parent's files.
    """
    def one(key: str) -> int:
        name = key.rsplit("/", 1)[1]
        data = store.get_bytes(key)
        tmp = archive / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)   # made durable by the timeline's syncfs before READY
        finally:
            os.close(fd)
        owner.chown(tmp)
        os.rename(tmp, archive / name)
        return len(data)

    with ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix="wal-down") as pool:
        for n in pool.map(one, keys):
            progress(n)


def _describe(target: RecoveryTarget) -> str:
    if target.kind is TargetKind.END:
        return f"the end of the archived WAL of Postgres timeline {target.timeline}"
    if target.kind is TargetKind.LSN:
        return f"LSN {target.lsn} (the branch point)"
    return f"{target.time} (the branch point)"


def restore_secrets(store: ReadStore, secrets_dir: Path) -> list[str]:
    """The home's keys from the bucket into ``secrets_dir`` (0600); names restored."""
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    names = []
    for obj in store.list(SECRETS_PREFIX):
        name = obj.key[len(SECRETS_PREFIX):]
        if "/" in name or not name or name.startswith("."):
            continue
        path = secrets_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, store.get_bytes(obj.key))
            os.fsync(fd)
        finally:
            os.close(fd)
        names.append(name)
    return sorted(names)


__all__ = ["RestoredTimeline", "first_start_target", "own_pg_timelines", "restore_secrets",
           "restore_timeline"]
