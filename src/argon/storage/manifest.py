"""Timeline manifests: the small JSON file beside each timeline's data.

It lets storage be audited or rebuilt without the control plane's metadata, and its
``state`` tells a finished timeline from one a crash interrupted.  Written by temp +
fsync + rename so a reader sees the old or the new file, never half of one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from argon.errors import InvalidInput
from argon.pg import Lsn

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


class TimelineState(StrEnum):
    CREATING = "creating"
    READY = "ready"


@dataclass(frozen=True)
class BranchPoint:
    lsn: Lsn                 # the LSN the child is consistent at (its branch point)
    pg_timeline: int         # the parent's Postgres timeline at that LSN
    timestamp: datetime      # tz-aware UTC

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            raise InvalidInput("a branch point timestamp must be timezone-aware")

    def to_json(self) -> dict[str, Any]:
        return {"lsn": str(self.lsn), "pg_timeline": self.pg_timeline,
                "timestamp": self.timestamp.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BranchPoint:
        return cls(Lsn.parse(data["lsn"]), int(data["pg_timeline"]),
                   datetime.fromisoformat(data["timestamp"]))


@dataclass(frozen=True)
class TimelineManifest:
    id: str
    parent_id: str | None
    branch_point: BranchPoint | None
    state: TimelineState
    driver: str
    created_at: datetime
    recovery_pending: bool = False   # the one-shot recovery target is still configured
    # False while a branch made at a timestamp has not recovered yet: its exact LSN is
    # known only once Postgres stopped at the first commit after the time.
    branch_lsn_exact: bool = True

    def with_state(self, state: TimelineState) -> TimelineManifest:
        return replace(self, state=state)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "id": self.id,
            "parent_id": self.parent_id,
            "branch_point": self.branch_point.to_json() if self.branch_point else None,
            "state": self.state.value,
            "driver": self.driver,
            "created_at": self.created_at.isoformat(),
            "recovery_pending": self.recovery_pending,
            "branch_lsn_exact": self.branch_lsn_exact,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimelineManifest:
        try:
            if data.get("format") != FORMAT_VERSION:
                raise ValueError(f"unknown manifest format {data.get('format')!r}")
            bp = data.get("branch_point")
            return cls(
                id=str(data["id"]),
                parent_id=data.get("parent_id"),
                branch_point=BranchPoint.from_json(bp) if bp else None,
                state=TimelineState(data["state"]),
                driver=str(data["driver"]),
                created_at=datetime.fromisoformat(data["created_at"]),
                recovery_pending=bool(data.get("recovery_pending", False)),
                branch_lsn_exact=bool(data.get("branch_lsn_exact", True)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"timeline manifest is invalid: {e}") from None


def write_manifest(timeline_dir: Path, manifest: TimelineManifest) -> None:
    path = timeline_dir / MANIFEST_NAME
    tmp = timeline_dir / (MANIFEST_NAME + ".tmp")
    data = (json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n").encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    dfd = os.open(timeline_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)  # make the rename itself durable
    finally:
        os.close(dfd)


def read_manifest(timeline_dir: Path) -> TimelineManifest:
    try:
        text = (timeline_dir / MANIFEST_NAME).read_text()
    except FileNotFoundError:
        raise InvalidInput(f"{timeline_dir} has no {MANIFEST_NAME}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidInput(f"{timeline_dir / MANIFEST_NAME} is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{timeline_dir / MANIFEST_NAME} is not a JSON object")
    return TimelineManifest.from_json(data)
