"""Storage integration fixtures: a storage root plus servers that are always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from argon.pg import OsUser, PgInstall
from argon.storage import CloneDriver, Storage, detect_clone_driver
from tests.fixtures.pgserver import PgServer
from tests.fixtures.storage import (
    initdb_from_template,
    pg_install,
    running,
    start_timeline,
    wait_promoted,
    xfs_reflink_dir,  # noqa: F401 - fixture re-exported for the tests in this folder
)


@dataclass
class StorageEnv:
    storage: Storage
    install: PgInstall
    owner: OsUser
    workdir: Path
    servers: dict[str, PgServer] = field(default_factory=dict)

    def init(self, timeline_id: str) -> None:
        self.storage.init_timeline(timeline_id, initdb_from_template(self.install, self.owner))

    def start(self, timeline_id: str) -> PgServer:
        server = start_timeline(self.storage, timeline_id, self.install, self.owner,
                                self.workdir)
        self.servers[timeline_id] = server
        if self.storage.manifest(timeline_id).recovery_pending:
            wait_promoted(server)
            self.storage.recovery_finished(timeline_id)
        return server

    def stop(self, timeline_id: str) -> None:
        self.servers.pop(timeline_id).stop()

    def branch(self, child: str, parent: str, *, running_parent: bool = True) -> None:
        conn = running(self.servers[parent]) if running_parent else None
        self.storage.branch_timeline(child, parent, conn)

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()


def make_env(root: Path, workdir: Path, owner: OsUser, pg_version: int,
             driver: CloneDriver | None = None) -> StorageEnv:
    install = pg_install(pg_version, owner)
    storage = Storage(root, driver or detect_clone_driver(root), owner)
    return StorageEnv(storage, install, owner, workdir)


@pytest.fixture
def env18(argon_tmp: Path, pg_user: OsUser) -> Iterator[StorageEnv]:
    env = make_env(argon_tmp / "timelines", argon_tmp, pg_user, 18)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def env15(argon_tmp: Path, pg_user: OsUser) -> Iterator[StorageEnv]:
    env = make_env(argon_tmp / "timelines", argon_tmp, pg_user, 15)
    try:
        yield env
    finally:
        env.close()
