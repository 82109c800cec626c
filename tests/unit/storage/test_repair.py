"""Start-up repair: the pure plan, and Storage.repair on a real directory tree."""

from __future__ import annotations

from pathlib import Path

from argon.pg import pg_os_user
from argon.storage import CopyDriver, Storage, TimelineState
from argon.storage.repair import plan_repair

C, R = TimelineState.CREATING, TimelineState.READY


def test_plan_removes_half_made_unknown_unreadable_and_trash() -> None:
    found = {"main": R, "dev": C, "old": R, "junk": None, ".trash-gone.1a2b": None,
             ".cache": None}
    plan = plan_repair(found, {"main", "dev"})
    assert [(a.name, a.sentence) for a in plan] == [
        (".trash-gone.1a2b", "finished deleting timeline gone"),
        ("dev", "removed half-made timeline dev"),
        ("junk", "removed timeline directory junk: it has no readable manifest"),
        ("old", "removed timeline old: the control plane does not know it"),
    ]


def test_plan_keeps_known_ready_timelines() -> None:
    assert plan_repair({"a": R, "b": R}, {"a", "b", "c"}) == []


def _fake_initdb(pgdata: Path) -> None:
    (pgdata / "PG_VERSION").write_text("18\n")


def test_storage_repair_and_delete_on_disk(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "tl", CopyDriver(), pg_os_user())
    storage.init_timeline("main", _fake_initdb)
    storage.init_timeline("stale", _fake_initdb)
    (tmp_path / "tl" / "junk").mkdir()
    assert storage.repair({"main"}) == [
        "removed timeline directory junk: it has no readable manifest",
        "removed timeline stale: the control plane does not know it",
    ]
    assert storage.exists("main") and not storage.exists("stale")
    assert sorted(p.name for p in (tmp_path / "tl").iterdir()) == ["main"]
    storage.delete_timeline("main")
    storage.delete_timeline("main")
    assert list((tmp_path / "tl").iterdir()) == []
