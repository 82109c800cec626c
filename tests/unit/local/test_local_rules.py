"""The I/O-free rules of ``argon local`` and ``argon import``: git HEAD reading, the
DELETE_BRANCH values, the mode chosen, and which dump entries are left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from argon.control.imports import filter_toc
from argon.errors import InvalidInput
from argon.local.branches import LocalConfig
from argon.local.git_head import current_branch, head_file
from argon.local.launch import env_bool

SUPABASE_TOC = """;
; Archive created at 2026-12-01 13:00:00 UTC
;
3; 2615 2200 SCHEMA - public pg_database_owner
4550; 0 0 COMMENT - SCHEMA public pg_database_owner
2; 3079 16385 EXTENSION - citext
217; 1259 16400 TABLE public orders dumper
4551; 0 0 ACL - SCHEMA public pg_database_owner
4552; 0 0 ACL public TABLE orders dumper
4553; 826 16420 DEFAULT ACL public DEFAULT PRIVILEGES FOR TABLES dumper
"""


def test_supabase_public_schema_entries_are_left_out_and_reported() -> None:
    kept, skipped = filter_toc(SUPABASE_TOC)
    assert kept == ["2; 3079 16385 EXTENSION - citext",
                    "217; 1259 16400 TABLE public orders dumper",
                    "4552; 0 0 ACL public TABLE orders dumper",
                    "4553; 826 16420 DEFAULT ACL public DEFAULT PRIVILEGES FOR TABLES dumper"]
    assert len([s for s in skipped if "public schema exists" in s]) == 3
    assert any(s.startswith("2 privilege entries") for s in skipped)


def test_head_names_the_checked_out_branch(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/feature/login\n")
    head = head_file(tmp_path)
    assert head == tmp_path / ".git" / "HEAD"
    assert head_file(tmp_path / ".git") == head and head_file(head) == head
    assert current_branch(head) == "feature/login"
    mounted = tmp_path / "mnt" / ".git" / "HEAD"     # a container's mount, not there yet
    assert head_file(mounted) == mounted
    head.write_text("3f2a9c0d1e\n")
    with pytest.raises(InvalidInput, match="detached"):
        current_branch(head)


@pytest.mark.parametrize(("text", "value"), [(None, True), ("", True), ("false", False),
                                             ("FALSE", False), ("0", False), ("true", True)])
def test_delete_branch_values(text: str | None, value: bool) -> None:
    assert env_bool(text, True) is value


def test_delete_branch_garbage_is_refused() -> None:
    with pytest.raises(InvalidInput, match="DELETE_BRANCH"):
        env_bool("sometimes", True)


def test_mode_follows_neon_local(tmp_path: Path) -> None:
    head = tmp_path / "HEAD"
    def mode(branch: str | None, delete: bool, git: Path | None) -> str:
        return LocalConfig(None, branch, None, delete, git, tmp_path).mode
    assert mode("br-x", True, None) == "branch"
    assert mode("br-x", False, head) == "branch"
    assert mode(None, True, head) == "ephemeral"
    assert mode(None, False, head) == "kept"          # no HEAD file there yet
    head.write_text("ref: refs/heads/main\n")
    assert mode(None, False, head) == "git"
