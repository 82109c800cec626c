"""The pure parts of project templates: CRC-32C, finding pg_control's CRC, and which
spare clones a start-up removes."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from argon.control.project_template import (
    TemplateError, _crc_offset, _remove_stale_spares, crc32c)


def test_crc32c_matches_the_castagnoli_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


def test_the_crc_is_found_where_it_covers_everything_before_it() -> None:
    body = bytes(i % 251 for i in range(296))
    data = bytearray(body + struct.pack("@I", crc32c(body)) + bytes(8192 - 300))
    assert _crc_offset(data) == 296


def test_a_control_file_without_a_valid_crc_is_refused() -> None:
    with pytest.raises(TemplateError, match="no valid CRC"):
        _crc_offset(bytearray(512))


def test_spare_clones_cut_short_or_of_old_templates_are_removed(tmp_path: Path) -> None:
    """A spare build whose process died (a crash mid-clone, also one that had this
    process's pid) and spares of a template that is no more go; another live process's
    build and ready spares of the template stay."""
    root = tmp_path / "templates"
    spares = root / ".spares"
    (root / "pg18.6-f2").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    for name in (f".build-{dead.pid}-pg18.6-f2-aaaa", f".build-{os.getpid()}-pg18.6-f2-bbbb",
                 f".build-{os.getppid()}-pg18.6-f2-eeee", "pg17.9-f1-cccc", "pg18.6-f2-dddd"):
        (spares / name / "base").mkdir(parents=True)
    _remove_stale_spares(spares, root)
    assert sorted(p.name for p in spares.iterdir()) == [
        f".build-{os.getppid()}-pg18.6-f2-eeee", "pg18.6-f2-dddd"]
