"""Timeline manifests: JSON round trip, atomic writes, clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from argon.errors import InvalidInput
from argon.pg import Lsn
from argon.storage import BranchPoint, TimelineManifest, TimelineState
from argon.storage.manifest import MANIFEST_NAME, read_manifest, write_manifest

NOW = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def _manifest(**kw: object) -> TimelineManifest:
    base: dict[str, object] = dict(
        id="tl-child", parent_id="tl-main",
        branch_point=BranchPoint(Lsn.parse("0/3000060"), 1, NOW),
        state=TimelineState.READY, driver="reflink", created_at=NOW, recovery_pending=True)
    base.update(kw)
    return TimelineManifest(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("manifest", [
    _manifest(),
    _manifest(parent_id=None, branch_point=None, state=TimelineState.CREATING,
              recovery_pending=False),
])
def test_round_trip_through_disk(tmp_path: Path, manifest: TimelineManifest) -> None:
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest
    assert not (tmp_path / (MANIFEST_NAME + ".tmp")).exists()
    data = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert data["state"] == manifest.state.value
    if manifest.branch_point:
        assert data["branch_point"]["lsn"] == "0/3000060"


def test_rewrite_replaces_atomically(tmp_path: Path) -> None:
    write_manifest(tmp_path, _manifest(state=TimelineState.CREATING))
    write_manifest(tmp_path, _manifest())
    assert read_manifest(tmp_path).state is TimelineState.READY


def test_naive_branch_point_time_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="timezone"):
        BranchPoint(Lsn(0), 1, datetime(2026, 1, 1))


@pytest.mark.parametrize("text", ["", "[]", "{}", '{"format": 1, "id": "x"}',
                                  '{"format": 99, "id": "x"}'])
def test_broken_manifests_raise_invalid_input(tmp_path: Path, text: str) -> None:
    (tmp_path / MANIFEST_NAME).write_text(text)
    with pytest.raises(InvalidInput):
        read_manifest(tmp_path)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no manifest"):
        read_manifest(tmp_path)
