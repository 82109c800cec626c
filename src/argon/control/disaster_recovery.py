"""``argon recover``: rebuild a lost home from the bucket and the surviving metadata.

Input: an empty home, the metadata (``--metadata-url``: the lost home's database, which
must live elsewhere, e.g. on Postgres; without it, the copy of the home's SQLite file
that the uploader kept in the bucket) and the bucket (snapshots, WAL, the home's keys).
For every timeline a branch of the metadata uses, storage lays out the data directory
from the newest snapshot and arms a recovery that replays the archived WAL at the
compute's first start (storage/objectstore/snapshot_restore.py); older snapshots come
down too, so branching at a past point works as before.  Then ``argon start`` on that
home serves every project: its repair pass marks the endpoints idle, and the first
connection to each branch replays its WAL from the bucket.

What is lost is what never reached the bucket: WAL not archived yet when the disk died
(see docs/object-storage.md for the bound), and nothing else.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from argon.errors import InvalidInput, NotFound
from argon.meta import tables as t
from argon.meta.db import open_database
from argon.settings import Settings
from argon.storage.manifest import TimelineManifest
from argon.storage.objectstore.metadata_copy import METADATA_KEY, restore_metadata
from argon.storage.objectstore.snapshot_plan import (
    SnapshotRecord,
    snapshot_of_key,
    timeline_manifest_key,
    timeline_prefix,
)
from argon.storage.objectstore.snapshot_restore import (
    ReadStore,
    RestoredTimeline,
    restore_secrets,
    restore_timeline,
)

logger = logging.getLogger(__name__)


@dataclass
class RecoverySummary:
    home: str
    object_store: str
    metadata_url: str
    projects: int = 0
    branches: int = 0
    timelines: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)   # branches whose data was not found
    bytes_downloaded: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RecoverProgress:
    """What ``recover_home`` reports while it works (the CLI draws it with Rich)."""

    def planned(self, timelines: int, total_bytes: int) -> None: ...
    def timeline(self, timeline_id: str, branch: str) -> None: ...
    def bytes(self, n: int) -> None: ...


@dataclass(frozen=True)
class _Wanted:
    timeline_id: str
    branch: str          # "<project>/<branch name>" for messages
    manifest: TimelineManifest
    bytes: int


def check_empty_home(settings: Settings) -> None:
    home = settings.home
    if not home.exists():
        return
    leftovers = [p.name for p in home.iterdir()
                 if p.name not in ("logs",) and not p.name.startswith(".")]
    if leftovers:
        raise InvalidInput(f"{home} is not empty ({', '.join(sorted(leftovers)[:5])}); "
                           "recover into a new, empty home")


def recover_home(settings: Settings, store: ReadStore, object_store_url: str,
                 progress: RecoverProgress | None = None) -> RecoverySummary:
    """Rebuild every branch the metadata knows into the empty ``settings.home``."""
    from argon.control.services import prepare_home   # noqa: PLC0415 - heavy imports
    from argon.pg import pg_os_user   # noqa: PLC0415
    from argon.storage import Storage, detect_clone_driver   # noqa: PLC0415
    from argon.storage.drivers import check_driver_choice   # noqa: PLC0415
    from argon.storage.objectstore.kit import prepare_bucket_wal   # noqa: PLC0415

    progress = progress or RecoverProgress()
    started = time.monotonic()
    check_driver_choice(settings.clone_driver)
    check_empty_home(settings)
    if settings.metadata_url is None:
        # the home's own SQLite: the copy the uploader kept in the bucket
        if not store.exists(METADATA_KEY):
            raise InvalidInput("the bucket has no copy of the metadata (the lost home kept "
                               "it elsewhere?): give --metadata-url")
        settings.home.mkdir(parents=True, exist_ok=True)
        restore_metadata(store, settings.home / "argon.db")
    summary = RecoverySummary(str(settings.home), object_store_url,
                              _safe_url(settings.metadata_url) if settings.metadata_url
                              else f"the bucket's copy ({METADATA_KEY})")
    engine = open_database(settings.db_url)
    try:
        with engine.begin() as conn:
            summary.projects = len(conn.execute(select(t.projects.c.id)).all())
            branches = conn.execute(select(t.branches.c.timeline_id, t.branches.c.name,
                                           t.branches.c.project_id)).all()
    finally:
        engine.dispose()
    summary.branches = len(branches)
    wanted: dict[str, _Wanted] = {}
    for b in branches:
        try:
            manifest = TimelineManifest.from_json(
                json.loads(store.get_bytes(timeline_manifest_key(b.timeline_id))))
        except Exception as exc:  # noqa: BLE001 - reported, the others go on
            logger.warning("branch %s/%s: timeline %s is not in the bucket: %s",
                           b.project_id, b.name, b.timeline_id, exc)
            summary.missing.append(f"{b.project_id}/{b.name} (timeline {b.timeline_id})")
            continue
        wanted[b.timeline_id] = _Wanted(b.timeline_id, f"{b.project_id}/{b.name}", manifest,
                                        _record_bytes(store, b.timeline_id))
    order = _parents_first(wanted)
    progress.planned(len(order), sum(wanted[tl].bytes for tl in order))

    prepare_home(settings.home)
    summary.secrets = restore_secrets(store, settings.home / "secrets")
    owner = pg_os_user()
    driver = detect_clone_driver(settings.home / "timelines", settings.clone_driver)
    storage = Storage(settings.home / "timelines", driver, owner)
    # the recovered data directories' restore_command falls back to the bucket
    storage.bucket_wal = prepare_bucket_wal(settings.home, object_store_url, owner)
    cache: dict[str, bytes] = {}   # small chunks: most are shared by every project
    for tl in order:
        progress.timeline(tl, wanted[tl].branch)
        try:
            done: RestoredTimeline = restore_timeline(store, storage, tl, progress.bytes, cache)
        except (InvalidInput, NotFound) as exc:
            # this branch cannot come back (half-made when the disk died, or its history
            # is not in the bucket): say so, leave no half-laid timeline, go on
            logger.warning("branch %s not recovered: %s", wanted[tl].branch, exc.message)
            summary.missing.append(f"{wanted[tl].branch} (timeline {tl}): {exc.message}")
            storage.delete_timeline(tl)
            continue
        summary.timelines.append({"branch": wanted[tl].branch, **asdict(done)})
        summary.bytes_downloaded += done.bytes
    summary.seconds = round(time.monotonic() - started, 3)
    logger.info("recovered %d timelines of %d projects from %s in %.1f s", len(order),
                summary.projects, object_store_url, summary.seconds)
    return summary


def _record_bytes(store: ReadStore, timeline_id: str) -> int:
    """Bytes to download for a timeline: its snapshots' files and its WAL."""
    total = sum(o.size for o in store.list(f"timelines/{timeline_id}/wal/"))
    for obj in store.list(timeline_prefix(timeline_id)):
        if snapshot_of_key(obj.key) is not None:
            record = SnapshotRecord.from_json(json.loads(store.get_bytes(obj.key)))
            total += record.stored_bytes()
    return total


def _parents_first(wanted: dict[str, _Wanted]) -> list[str]:
    """Timelines ordered so that every ancestor comes before its children."""
    out: list[str] = []
    seen: set[str] = set()

    def visit(tl: str, depth: int) -> None:
        if tl in seen or depth > 10_000:
            return
        parent = wanted[tl].manifest.parent_id
        if parent is not None and parent in wanted:
            visit(parent, depth + 1)
        seen.add(tl)
        out.append(tl)

    for tl in sorted(wanted):
        visit(tl, 0)
    return out


def _safe_url(url: str) -> str:
    """The metadata URL without its password, for the summary."""
    from sqlalchemy.engine import make_url   # noqa: PLC0415
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url.split("@")[-1]


def summary_line(summary: RecoverySummary) -> str:
    gib = summary.bytes_downloaded / 2**30
    return (f"recovered {len(summary.timelines)} timeline(s) of {summary.projects} "
            f"project(s) into {summary.home}: {gib:.2f} GiB in {summary.seconds:.1f} s")


__all__ = ["RecoverProgress", "RecoverySummary", "check_empty_home", "recover_home",
           "summary_line"]
