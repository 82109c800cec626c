"""Clone exclusion rules and the tree walk (copy driver on the local filesystem)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from argon.errors import InvalidInput
from argon.pg import pg_os_user
from argon.storage import CopyDriver
from argon.storage.tree import Action, CloneRules, clone_action, clone_tree

R = CloneRules()


@pytest.mark.parametrize(("rel", "is_dir", "expected"), [
    (("postmaster.pid",), False, Action.SKIP),
    (("postmaster.opts",), False, Action.SKIP),
    (("backup_label",), False, Action.SKIP),
    (("tablespace_map",), False, Action.SKIP),
    (("current_logfiles",), False, Action.SKIP),
    (("recovery.signal",), False, Action.SKIP),
    (("standby.signal",), False, Action.SKIP),
    (("argon.storage.conf",), False, Action.SKIP),
    (("postgresql.conf",), False, Action.COPY),
    (("postgresql.auto.conf",), False, Action.COPY),
    (("PG_VERSION",), False, Action.COPY),
    (("pg_replslot",), True, Action.EMPTY),
    (("pg_dynshmem",), True, Action.EMPTY),
    (("pg_notify",), True, Action.EMPTY),
    (("pg_serial",), True, Action.EMPTY),
    (("pg_snapshots",), True, Action.EMPTY),
    (("pg_stat_tmp",), True, Action.EMPTY),
    (("pg_subtrans",), True, Action.EMPTY),
    (("log",), True, Action.EMPTY),
    (("pg_wal",), True, Action.COPY),
    (("pg_wal", "archive_status"), True, Action.EMPTY),
    (("pg_wal", "summaries"), True, Action.EMPTY),
    (("pg_wal", "000000010000000000000001"), False, Action.SKIP),
    (("pg_wal", "00000002.history"), False, Action.SKIP),
    (("base",), True, Action.COPY),
    (("base", "5", "1259"), False, Action.COPY),
    (("base", "pgsql_tmp"), True, Action.SKIP),
    (("base", "5", "pgsql_tmp123.4"), False, Action.SKIP),
    (("base", "5", "pg_internal.init"), False, Action.SKIP),
    (("global", "pg_internal.init.123"), False, Action.SKIP),
    (("global", "pg_control"), False, Action.COPY),
    (("pg_xact", "0000"), False, Action.COPY),
    (("pg_stat", "pgstat.stat"), False, Action.COPY),
])
def test_clone_action(rel: tuple[str, ...], is_dir: bool, expected: Action) -> None:
    assert clone_action(rel, is_dir, R) is expected


def test_custom_log_directory_and_kept_wal() -> None:
    rules = CloneRules(log_dirs=frozenset({"log", "pg_log"}), keep_wal=True,
                       keep_backup_files=True)
    assert clone_action(("pg_log",), True, rules) is Action.EMPTY
    assert clone_action(("pg_wal", "000000010000000000000001"), False, rules) is Action.COPY
    assert clone_action(("backup_label",), False, rules) is Action.COPY
    assert clone_action(("postmaster.pid",), False, rules) is Action.SKIP


def _make(path: Path, mode: int = 0o600, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def test_clone_tree_keeps_modes_and_skips_exclusions(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir(mode=0o700)
    _make(src / "PG_VERSION", 0o600, b"18\n")
    _make(src / "postmaster.pid", 0o600, b"123\n")
    _make(src / "base" / "5" / "1259", 0o640, b"p" * 100_000)
    _make(src / "base" / "5" / "pg_internal.init")
    _make(src / "base" / "pgsql_tmp" / "pgsql_tmp1.0")
    _make(src / "pg_wal" / "000000010000000000000001")
    (src / "pg_wal" / "archive_status").mkdir()
    _make(src / "pg_wal" / "archive_status" / "000000010000000000000001.ready")
    _make(src / "pg_stat_tmp" / "global.stat")
    (src / "pg_replslot").mkdir()
    dst = tmp_path / "dst"
    stats = clone_tree(src, dst, CopyDriver(), pg_os_user(), CloneRules())

    assert (dst / "PG_VERSION").read_bytes() == b"18\n"
    assert (dst / "base" / "5" / "1259").read_bytes() == b"p" * 100_000
    assert stat.S_IMODE((dst / "base" / "5" / "1259").stat().st_mode) == 0o640
    assert stat.S_IMODE(dst.stat().st_mode) == 0o700
    assert not (dst / "postmaster.pid").exists()
    assert not (dst / "base" / "5" / "pg_internal.init").exists()
    assert not (dst / "base" / "pgsql_tmp").exists()
    assert sorted(p.name for p in (dst / "pg_wal").iterdir()) == ["archive_status"]
    assert list((dst / "pg_wal" / "archive_status").iterdir()) == []
    assert list((dst / "pg_stat_tmp").iterdir()) == []
    assert (dst / "pg_replslot").is_dir()
    assert stats.files == 2


def test_clone_tree_owner_is_the_postgres_account(tmp_path: Path) -> None:
    owner = pg_os_user()
    src = tmp_path / "src"
    _make(src / "global" / "pg_control")
    clone_tree(src, tmp_path / "dst", CopyDriver(), owner, CloneRules())
    for p in [tmp_path / "dst", tmp_path / "dst" / "global", tmp_path / "dst" / "global" /
              "pg_control"]:
        assert p.stat().st_uid == owner.uid


def test_clone_tree_refuses_tablespace_symlinks(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pg_tblspc").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (src / "pg_tblspc" / "16400").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidInput, match="tablespace"):
        clone_tree(src, tmp_path / "dst", CopyDriver(), pg_os_user(), CloneRules())


def test_clone_tree_links_only_the_files_still_identical_to_the_template(
        tmp_path: Path) -> None:
    """A snapshot of a project's fresh data directory shares the template's unchanged
    files (hard links) and copies the ones the project changed, or added, or whose mode
    differs: a link to a changed file would rewrite the template's."""
    template, src = tmp_path / "template", tmp_path / "src"
    for root in (template, src):
        _make(root / "base" / "5" / "1259", 0o600, b"catalog" * 5000)
        _make(root / "global" / "pg_control", 0o600, b"template identity")
        _make(root / "PG_VERSION", 0o600, b"18\n")
    (src / "global" / "pg_control").write_bytes(b"project identity!")   # same size
    _make(src / "base" / "5" / "16384", 0o600, b"new in the project")
    os.chmod(src / "PG_VERSION", 0o640)
    dst = tmp_path / "snapshot"
    clone_tree(src, dst, CopyDriver(), pg_os_user(), R, link_from=template)

    def same_inode(a: Path, b: Path) -> bool:
        return a.stat().st_ino == b.stat().st_ino
    assert same_inode(dst / "base" / "5" / "1259", template / "base" / "5" / "1259")
    assert not same_inode(dst / "global" / "pg_control", template / "global" / "pg_control")
    assert not same_inode(dst / "PG_VERSION", template / "PG_VERSION")
    assert (dst / "global" / "pg_control").read_bytes() == b"project identity!"
    assert (dst / "base" / "5" / "16384").read_bytes() == b"new in the project"
    assert (dst / "PG_VERSION").read_bytes() == b"18\n"
    assert stat.S_IMODE((dst / "PG_VERSION").stat().st_mode) == 0o640
    assert (template / "global" / "pg_control").read_bytes() == b"template identity"
