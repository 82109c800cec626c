"""argon.storage.conf rendering, and the restore_command really run by /bin/sh."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from argon.errors import InvalidInput
from argon.pg import Lsn
from argon.storage import RecoveryTarget, StorageConf, TargetKind, render_storage_conf
from argon.storage.conf import quote_conf, restore_command


def _settings(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split(" = ", 1)
            out[key] = value
    return out


def test_ready_timeline_archives_and_restores_without_a_target() -> None:
    conf = StorageConf(Path("/s/tl-b/wal"), (Path("/s/tl-b/wal"), Path("/s/tl-a/wal")))
    s = _settings(render_storage_conf(conf))
    assert s["archive_mode"] == "on"
    assert s["archive_library"] == "'basic_archive'"
    assert s["archive_command"] == "''"
    assert s["basic_archive.archive_directory"] == "'/s/tl-b/wal'"
    assert "/s/tl-b/wal /s/tl-a/wal" in s["restore_command"]  # child first
    assert not any(k.startswith("recovery_target") for k in s)


def test_pending_branch_gets_the_one_shot_immediate_target() -> None:
    conf = StorageConf(Path("/w"), (Path("/w"),), RecoveryTarget())
    s = _settings(render_storage_conf(conf))
    assert s["recovery_target"] == "'immediate'"
    assert s["recovery_target_action"] == "'promote'"
    assert s["recovery_target_timeline"] == "'latest'"


def test_lsn_and_time_targets_render_for_point_in_time_branches() -> None:
    lsn_conf = StorageConf(Path("/w"), (Path("/w"),),
                           RecoveryTarget(TargetKind.LSN, lsn=Lsn.parse("0/16B3748")))
    s = _settings(render_storage_conf(lsn_conf))
    assert s["recovery_target_lsn"] == "'0/16B3748'"
    assert "recovery_target" not in s
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    t = _settings(render_storage_conf(StorageConf(
        Path("/w"), (Path("/w"),), RecoveryTarget(TargetKind.TIME, time=when, inclusive=False))))
    assert t["recovery_target_time"] == "'2026-01-02 03:04:05+02:00'"
    assert t["recovery_target_inclusive"] == "off"


def test_targets_are_validated() -> None:
    with pytest.raises(InvalidInput):
        RecoveryTarget(TargetKind.LSN)
    with pytest.raises(InvalidInput):
        RecoveryTarget(TargetKind.TIME, time=datetime(2026, 1, 1))  # naive
    RecoveryTarget(TargetKind.TIME, time=datetime(2026, 1, 1, tzinfo=UTC))


def test_conf_quoting_doubles_quotes_and_backslashes() -> None:
    assert quote_conf("it's a\\b") == "'it''s a\\\\b'"


def _run_restore(dirs: tuple[Path, ...], fname: str, dest: Path) -> int:
    # Do what Postgres does: expand %f/%p/%% left to right, hand the line to /bin/sh -c.
    subst = {"%f": fname, "%p": str(dest), "%%": "%"}
    cmd = re.sub(r"%[fp%]", lambda m: subst[m.group(0)], restore_command(dirs))
    return subprocess.run(["/bin/sh", "-c", cmd], check=False).returncode


def test_restore_command_takes_the_nearest_archive_first(tmp_path: Path) -> None:
    child, parent, grand = (tmp_path / n for n in ("child 1", "it's%parent", "grand"))
    for d in (child, parent, grand):
        d.mkdir()
    (grand / "000000010000000000000001").write_text("grand")
    (parent / "000000010000000000000001").write_text("parent")
    (grand / "000000010000000000000002").write_text("grand-only")
    dest = tmp_path / "RECOVERYXLOG"
    dirs = (child, parent, grand)
    assert _run_restore(dirs, "000000010000000000000001", dest) == 0
    assert dest.read_text() == "parent"
    assert _run_restore(dirs, "000000010000000000000002", dest) == 0
    assert dest.read_text() == "grand-only"
    assert _run_restore(dirs, "00000002.history", dest) != 0  # missing: non-zero, no file


def test_restore_command_needs_a_directory() -> None:
    with pytest.raises(InvalidInput):
        restore_command(())
