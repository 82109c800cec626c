"""A branch interrupted by a crash stays `creating` and start-up repair removes it."""

from __future__ import annotations

import os
from pathlib import Path

from argon.storage import Storage, TimelineState
from tests.integration.storage.conftest import StorageEnv


class _CrashingDriver:
    """Copies a few files, then kills the process as a power cut would."""

    name = "copy"

    def __init__(self, after: int) -> None:
        self.left = after

    def clone_file(self, src: Path, dst: Path) -> None:
        self.left -= 1
        if self.left < 0:
            os._exit(3)
        dst.write_bytes(src.read_bytes())


def test_crash_mid_branch_leaves_creating_then_repair_removes_it(env18: StorageEnv) -> None:
    env18.init("main")
    pid = os.fork()
    if pid == 0:  # the "Argon process" that dies mid-clone
        try:
            crashing = Storage(env18.storage.root, _CrashingDriver(after=50), env18.owner)
            crashing.branch_timeline("dev", "main", None)
        finally:
            os._exit(4)  # only reached if the crash did not happen
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3

    storage = env18.storage
    assert storage.manifest("dev").state is TimelineState.CREATING
    assert storage.exists("dev")
    sentences = storage.repair({"main", "dev"})
    assert sentences == ["removed half-made timeline dev"]
    assert not storage.exists("dev")
    assert storage.manifest("main").state is TimelineState.READY
    # The id is free again: the branch can be retried.
    storage.branch_timeline("dev", "main", None)
    assert storage.manifest("dev").state is TimelineState.READY
    assert storage.repair({"main"}) == ["removed timeline dev: the control plane does not know it"]
    storage.delete_timeline("dev")  # idempotent
    assert storage.repair({"main"}) == []
