"""Time-travel queries, control side: a temporary read-only compute at a past point.

The proxy hook (``options=neon_timestamp:...``) is wired by the proxy room; this drives
``BranchService.ephemeral_compute_at`` / ``release_ephemeral`` in process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from argon.control.requests import ProjectCreate
from argon.control.services import Services, build_services
from argon.settings import Settings


@pytest.fixture
def services(argon_tmp: Path) -> Iterator[Services]:
    svc = build_services(Settings(home=argon_tmp / "home"))
    try:
        yield svc
    finally:
        for cid in svc.branches.tt.ephemeral_ids():
            svc.branches.release_ephemeral(cid)
        svc.stop_all_computes()


def test_ephemeral_compute_sees_the_past_read_only_and_is_cleaned_up(services: Services) -> None:
    created = services.projects.create(ProjectCreate(name="tt"))
    pid = created.project.id
    branch = created.branch.id
    ep = created.endpoints[0].id
    with services.runtime.connect(ep, dbname="neondb") as conn:
        conn.execute("CREATE TABLE t (id int)")
        conn.execute("INSERT INTO t VALUES (1), (2)")
        lsn = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO t VALUES (3)")
    eph = services.branches.ephemeral_compute_at(ep, lsn=lsn)
    assert eph.branch_id == branch
    with psycopg.connect(host=eph.address.host, port=eph.address.port, user="cloud_admin",
                         password=services.runtime.admin_passwords.for_project(pid),
                         dbname="neondb", autocommit=True) as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM t ORDER BY id")] == [1, 2]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO t VALUES (99)")
    timelines = {p.name for p in (services.ctx.settings.home / "timelines").iterdir()}
    assert services.branches.release_ephemeral(eph.id) is True
    assert services.branches.release_ephemeral(eph.id) is False
    after = {p.name for p in (services.ctx.settings.home / "timelines").iterdir()
             if not p.name.startswith(".")}
    assert len(after) == len(timelines) - 1
    # the branch itself is untouched and writable
    with services.runtime.connect(ep, dbname="neondb") as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (3,)
    assert pid
