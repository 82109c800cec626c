"""Argon killed at any moment: the next start removes what a replica's seed or delete
left half-done and re-adopts running replicas."""

from __future__ import annotations

import os

import pytest

from tests.integration.replicas.conftest import Project

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="writes into data directories owned by "
                       "the Postgres account: needs root"),
]


def test_a_restart_after_a_crash_removes_half_made_replica_data_and_keeps_the_rest(
        project: Project) -> None:
    env = project.env
    with project.connect() as c:
        c.execute("CREATE TABLE t (id int)")
        c.execute("INSERT INTO t VALUES (1), (2)")
    ep = project.add_replica()
    replicas = project.timeline() / "replicas"
    # what a crash leaves: a seed cut short, and the data of a replica whose row was
    # already deleted
    unfinished = replicas / f".seeding-{ep['id']}-0badc0de"
    ghost = replicas / "ep-ghost-0000001"
    for d in (unfinished, ghost):
        d.mkdir()
        (d / "PG_VERSION").write_text("18\n")
    env.kill9()
    env.start()
    assert not unfinished.exists() and not ghost.exists()
    assert (replicas / ep["id"] / "PG_VERSION").is_file()
    assert project.state(ep["id"]) == "active"      # re-adopted, never stopped
    with project.connect(ep["id"]) as c:
        assert c.execute("SELECT count(*) FROM t").fetchone() == (2,)
