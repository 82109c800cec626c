"""Safe migrations, control side, in process: a migration prepared but never completed
expires (its temporary branch is deleted), and completing it after that is refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from argon.control.requests import ProjectCreate
from argon.control.safe_migrations import SafeMigrations
from argon.control.services import Services, build_services
from argon.errors import NotFound
from argon.settings import Settings


@pytest.fixture
def services(argon_tmp: Path) -> Iterator[Services]:
    svc = build_services(Settings(home=argon_tmp / "home"))
    try:
        yield svc
    finally:
        svc.stop_all_computes()


def test_a_prepared_migration_expires_and_its_branch_is_deleted(services: Services) -> None:
    created = services.projects.create(ProjectCreate(name="exp"))
    pid = created.project.id
    store = SafeMigrations(services, ttl=timedelta(hours=1))
    prep = store.prepare(pid, "CREATE TABLE later (id int)")
    temp = prep.migration.temp_branch_id
    assert "CREATE TABLE public.later" in prep.schema_diff
    branch = services.branches.get(pid, temp)
    assert branch.expires_at is not None and branch.expires_at > services.ctx.clock()
    real = services.ctx.clock
    services.ctx.clock = lambda: real() + timedelta(hours=2)   # two hours later
    try:
        with pytest.raises(NotFound, match="expired"):
            store.complete(prep.migration.id)
    finally:
        services.ctx.clock = real
    with pytest.raises(NotFound):
        services.branches.get(pid, temp)
    # the target never got the table
    with services.runtime.connect(created.endpoints[0].id, dbname="neondb") as conn:
        assert conn.execute("SELECT to_regclass('later')").fetchone() == (None,)
