"""Clone driver detection on this machine's filesystem, and the copy driver."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from argon.errors import InvalidInput, Unavailable
from argon.storage import CopyDriver, detect_clone_driver
from argon.storage.drivers import reflink_supported


def _fstype(path: Path) -> str:
    out = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def test_auto_on_a_filesystem_without_reflinks_is_copy(tmp_path: Path) -> None:
    if reflink_supported(tmp_path):
        pytest.skip(f"{tmp_path} is on {_fstype(tmp_path)}, which supports reflinks")
    assert detect_clone_driver(tmp_path).name == "copy"
    with pytest.raises(Unavailable, match="reflink=1"):
        detect_clone_driver(tmp_path, prefer="reflink")
    assert not [p for p in tmp_path.iterdir()]  # the probe cleaned up after itself


def test_copy_is_always_available_and_unknown_names_are_rejected(tmp_path: Path) -> None:
    assert detect_clone_driver(tmp_path, prefer="copy").name == "copy"
    with pytest.raises(InvalidInput, match="auto, reflink, copy"):
        detect_clone_driver(tmp_path, prefer="zfs")


def test_detection_probes_the_nearest_existing_directory(tmp_path: Path) -> None:
    assert detect_clone_driver(tmp_path / "not" / "yet").name in ("copy", "reflink")
    assert not (tmp_path / "not").exists()


def test_copy_driver_copies_content_including_large_files(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = os.urandom(3 * 1024 * 1024 + 17)
    src.write_bytes(data)
    CopyDriver().clone_file(src, dst)
    assert dst.read_bytes() == data
    src.write_bytes(b"changed")
    assert dst.read_bytes() == data  # independent copies
