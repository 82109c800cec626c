"""How far each timeline's WAL archiving to the bucket is behind, from files only.

Two sources, neither needs a connection to the compute: Postgres' own
``pg_wal/archive_status/*.ready`` (segments finished but not archived yet: the backlog
and its age) and the status file the archive command writes after each attempt
(``wal_archive._record``: last success, consecutive failures, the client-safe error).
``/metrics`` reads them at scrape time; ``ArchiveWatch`` logs when archiving starts
failing, while it fails (once a minute) and when it works again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

WATCH_INTERVAL = 5.0
REPEAT_WARNING = 60.0


@dataclass(frozen=True)
class ArchiveState:
    timeline_id: str
    pending_segments: int          # .ready files: finished, not yet in bucket and archive
    pending_bytes: int
    oldest_pending_age: float      # seconds since the oldest pending file was finished
    last_success_time: float | None
    consecutive_failures: int
    failures_total: int
    last_error: str | None

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0


def read_state(timeline_dir: Path, status_dir: Path, now: float | None = None) -> ArchiveState:
    now = time.time() if now is None else now
    wal = timeline_dir / "pgdata" / "pg_wal"
    pending = 0
    pending_bytes = 0
    oldest: float | None = None
    try:
        entries = list(os.scandir(wal / "archive_status"))
    except OSError:
        entries = []
    for entry in entries:
        if not entry.name.endswith(".ready"):
            continue
        try:
            mtime = entry.stat().st_mtime
            size = (wal / entry.name.removesuffix(".ready")).stat().st_size
        except OSError:
            continue
        pending += 1
        pending_bytes += size
        oldest = mtime if oldest is None else min(oldest, mtime)
    try:
        status: dict[str, Any] = json.loads((status_dir / f"{timeline_dir.name}.json").read_text())
    except (OSError, ValueError):
        status = {}
    return ArchiveState(
        timeline_id=timeline_dir.name,
        pending_segments=pending,
        pending_bytes=pending_bytes,
        oldest_pending_age=max(0.0, now - oldest) if oldest is not None else 0.0,
        last_success_time=status.get("last_success_time"),
        consecutive_failures=int(status.get("consecutive_failures", 0)),
        failures_total=int(status.get("failures_total", 0)),
        last_error=status.get("last_error"),
    )


def timeline_states(root: Path, status_dir: Path) -> list[ArchiveState]:
    """Every timeline with a data directory under ``root``."""
    states = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and os.path.isdir(os.path.join(entry.path, "pgdata")):
            states.append(read_state(Path(entry.path), status_dir))
    return states


def wal_archive_families(storage: Any) -> Iterator[Any]:
    """Prometheus families for ``/metrics`` (nothing without an object store)."""
    bw = getattr(storage, "bucket_wal", None)
    if bw is None:
        return
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: PLC0415

    states = timeline_states(storage.root, bw.status_dir)
    labels = ["timeline_id"]
    pending = GaugeMetricFamily("argon_wal_archive_pending_segments", "WAL files finished but "
                                "not yet archived to the bucket (Postgres retries them)", labels=labels)
    lag_bytes = GaugeMetricFamily("argon_wal_archive_lag_bytes", "Bytes of finished WAL not "
                                  "yet in the bucket", labels=labels)
    lag_secs = GaugeMetricFamily("argon_wal_archive_lag_seconds", "Age of the oldest WAL file "
                                 "not yet in the bucket (0: none pending)", labels=labels)
    failing = GaugeMetricFamily("argon_wal_archive_consecutive_failures", "Archive attempts "
                                "failed since the last success", labels=labels)
    failures = CounterMetricFamily("argon_wal_archive_failures", "Archive attempts that "
                                   "failed", labels=labels)
    success = GaugeMetricFamily("argon_wal_archive_last_success_timestamp_seconds", "When a "
                                "WAL file last reached the bucket", labels=labels)
    for s in states:
        pending.add_metric([s.timeline_id], s.pending_segments)
        lag_bytes.add_metric([s.timeline_id], s.pending_bytes)
        lag_secs.add_metric([s.timeline_id], s.oldest_pending_age)
        failing.add_metric([s.timeline_id], s.consecutive_failures)
        failures.add_metric([s.timeline_id], s.failures_total)
        if s.last_success_time is not None:
            success.add_metric([s.timeline_id], s.last_success_time)
    yield from (pending, lag_bytes, lag_secs, failing, failures, success)


class ArchiveWatch:
    """A daemon thread logging archiving trouble per timeline (the archiver's own lines
    go to each compute's log, where an operator watching Argon does not look)."""

    def __init__(self, root: Path, status_dir: Path, url: str,
                 interval: float = WATCH_INTERVAL,
                 first: Callable[[], object] | None = None) -> None:
        self.root, self.status_dir, self.url, self.interval = root, status_dir, url, interval
        self._first = first   # once, on the thread, before watching (the backfill)
        self._failing: dict[str, float] = {}   # timeline -> when last warned
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="wal-archive-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        if self._first is not None:
            try:
                self._first()
            except Exception as exc:  # noqa: BLE001 - retried at the next start
                logger.warning("copying the local-only WAL to %s failed: %s", self.url,
                               getattr(exc, "message", exc))
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - a watcher must not die
                logger.exception("WAL archive watch failed")

    def check(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for s in timeline_states(self.root, self.status_dir):
            warned = self._failing.get(s.timeline_id)
            if s.failing and (warned is None or now - warned >= REPEAT_WARNING):
                logger.warning(
                    "WAL archiving of timeline %s to %s is failing (%d attempt(s) in a row: "
                    "%s); %d file(s), %.1f MiB wait in pg_wal and Postgres keeps retrying, "
                    "nothing is lost while the disk holds", s.timeline_id, self.url,
                    s.consecutive_failures, s.last_error, s.pending_segments,
                    s.pending_bytes / 2**20)
                self._failing[s.timeline_id] = now
            elif not s.failing and warned is not None:
                logger.info("WAL archiving of timeline %s to %s works again; %d file(s) "
                            "still pending", s.timeline_id, self.url, s.pending_segments)
                del self._failing[s.timeline_id]
