"""A replica's recovery settings: the restore_command really run by /bin/sh."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from argon.storage.replicas import PrimaryConn, render_replica_conf, replica_restore_command

SEG = "000000010000000000000003"


def _restore(cmd: str, pgdata: Path, name: str) -> int:
    # Postgres substitutes %f, %p and %% and runs the line with /bin/sh in the data dir
    line = cmd.replace("%f", name).replace("%p", "pg_wal/RECOVERYXLOG").replace("%%", "%")
    return subprocess.run(["/bin/sh", "-c", line], cwd=pgdata).returncode


def _layout(tmp: Path) -> tuple[Path, Path, Path]:
    archive, primary_wal, pgdata = tmp / "wal 100%", tmp / "primary" / "pg_wal", tmp / "replica"
    for d in (archive, primary_wal, pgdata / "pg_wal"):
        d.mkdir(parents=True)
    return archive, primary_wal, pgdata


def test_the_archive_wins_then_the_primarys_newer_partial_segment(tmp_path: Path) -> None:
    archive, primary_wal, pgdata = _layout(tmp_path)
    cmd = replica_restore_command((archive,), primary_wal)
    got = pgdata / "pg_wal" / "RECOVERYXLOG"
    assert _restore(cmd, pgdata, SEG) == 1 and not got.exists()       # nowhere yet
    (primary_wal / SEG).write_text("partial")
    assert _restore(cmd, pgdata, SEG) == 0 and got.read_text() == "partial"
    got.unlink()
    (archive / SEG).write_text("full")
    assert _restore(cmd, pgdata, SEG) == 0 and got.read_text() == "full"


def test_the_primarys_segment_is_not_copied_again_when_the_replica_has_it(
        tmp_path: Path) -> None:
    _archive, primary_wal, pgdata = _layout(tmp_path)
    cmd = replica_restore_command((tmp_path / "empty",), primary_wal)
    (primary_wal / SEG).write_text("partial")
    own = pgdata / "pg_wal" / SEG
    own.write_text("partial")
    later = time.time() + 5
    os.utime(own, (later, later))
    assert _restore(cmd, pgdata, SEG) == 1     # own copy is newer: nothing new there
    os.utime(primary_wal / SEG, (later + 5, later + 5))   # the primary wrote more
    assert _restore(cmd, pgdata, SEG) == 0


def test_the_conf_streams_only_when_a_primary_is_known(tmp_path: Path) -> None:
    plain = render_replica_conf((tmp_path / "wal",), tmp_path / "pg_wal", None)
    assert "primary_conninfo" not in plain and "archive_mode = off" in plain
    assert "recovery_target_timeline = 'latest'" in plain
    conn = PrimaryConn("/run/s k", 5433, "cloud_admin", "pa'ss", "ep-r")
    text = render_replica_conf((tmp_path / "wal",), tmp_path / "pg_wal", conn)
    (line,) = [x for x in text.splitlines() if x.startswith("primary_conninfo")]
    # libpq quoting inside a postgresql.conf literal: both levels escaped
    assert "host=''/run/s k''" in line and "password=''pa\\\\''ss''" in line
    assert "application_name=''ep-r''" in line and "port=''5433''" in line
