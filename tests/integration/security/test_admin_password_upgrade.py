"""Data directories made before computes required passwords get cloud_admin's password at
their next start, and a crash at any step of that upgrade is repaired by the next start.

Crashes are injected by making one step raise inside a real start (the postmaster keeps
running, as it does when Argon dies), then a fresh ``ComputeManager`` (Argon restarted)
starts the same spec, either re-adopting the running compute or after a kill of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from argon.compute import ComputeManager, ComputeSpec, admin_auth
from argon.compute import process as process_mod
from argon.pg import OsUser, PgInstall
from tests.fixtures.compute import layout_of, place

NEW_PASSWORD = "a-brand-new-admin-password"


class Crash(Exception):
    pass


def legacy_spec(make_compute_spec: Callable[..., ComputeSpec]) -> ComputeSpec:
    """A data directory whose cloud_admin's password is not (yet) the spec's, no marker."""
    spec = make_compute_spec()
    (place(spec).pgdata / admin_auth.MARKER).unlink()
    return replace(spec, admin_password=NEW_PASSWORD)


def assert_locked_down(mgr: ComputeManager, spec: ComputeSpec) -> None:
    port = mgr.process(spec).port  # type: ignore[union-attr]
    rules = [line.split() for line in (place(spec).pgdata / "pg_hba.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules and all(r[-1] == "scram-sha-256" for r in rules), rules
    assert admin_auth.is_set(place(spec).pgdata, spec)
    for password in ("", "test-admin-password"):   # none, and the old one
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host=str(place(spec).socket_dir), port=port, user="cloud_admin",
                            dbname="postgres", password=password, passfile="/nonexistent/.pgpass")
    with mgr.connect(spec) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("cloud_admin",)


def test_legacy_directory_without_any_password(compute_templates: Callable[[int], tuple[
        PgInstall, Path]], pg_user: OsUser, make_compute_spec: Callable[..., ComputeSpec],
        compute_manager: ComputeManager) -> None:
    from argon.compute import initdb
    spec = make_compute_spec()
    install, _ = compute_templates(18)
    fresh = place(spec).pgdata.parent / "legacy"
    initdb(install, fresh, pg_user)        # as Argon did before: no password at all
    assert not (fresh / admin_auth.MARKER).exists()
    layout_of(spec).dirs.add(spec.timeline_id, fresh)  # type: ignore[attr-defined]
    spec = replace(spec, admin_password=NEW_PASSWORD)
    compute_manager.start_process(spec)
    assert_locked_down(compute_manager, spec)


@pytest.mark.parametrize("step", ["set_password", "mark_set", "final_hba"])
@pytest.mark.parametrize("then", ["readopt", "killed"])
def test_crash_during_upgrade_is_repaired(step: str, then: str,
                                         make_compute_spec: Callable[..., ComputeSpec],
                                         pg_user: OsUser, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    spec = legacy_spec(make_compute_spec)
    first = ComputeManager(pg_user, layout_of(spec))
    if step == "final_hba":
        real = ComputeManager._write_hba

        def write_hba(self: ComputeManager, s: ComputeSpec, at: object, pf: object, *,
                      bootstrap: bool) -> None:
            if not bootstrap:
                raise Crash(step)
            real(self, s, at, pf, bootstrap=bootstrap)  # type: ignore[arg-type]
        monkeypatch.setattr(ComputeManager, "_write_hba", write_hba)
    else:
        def crash(*_a: object, **_k: object) -> None:
            raise Crash(step)
        monkeypatch.setattr(process_mod.admin_auth, step, crash)
    with pytest.raises(Crash):
        first.start_process(spec)
    monkeypatch.undo()
    assert first.pid(spec) is not None       # Postgres outlives the crashed start
    assert admin_auth.is_set(place(spec).pgdata, spec) == (step == "final_hba")
    if then == "killed":
        first.stop(spec, "immediate")
    again = ComputeManager(pg_user, layout_of(spec))          # Argon restarted
    again.start_process(spec)
    assert_locked_down(again, spec)
    if then == "killed":
        return
    again.stop(spec)                         # and a clean restart stays locked down
    again.start_process(spec)
    assert_locked_down(again, spec)


def test_a_marker_that_lies_is_repaired(make_compute_spec: Callable[..., ComputeSpec],
                                        compute_manager: ComputeManager) -> None:
    """A data directory copied with its marker but not its password (or a changed master
    key with a stale marker): the readiness check sees the refusal and upgrades again."""
    spec = replace(make_compute_spec(), admin_password=NEW_PASSWORD)
    # claims NEW_PASSWORD; pg_authid does not
    admin_auth.mark_set(place(spec).pgdata, spec, compute_manager.owner)
    compute_manager.start_process(spec)
    assert_locked_down(compute_manager, spec)


def test_a_spec_without_password_is_refused(make_compute_spec: Callable[..., ComputeSpec],
                                            compute_manager: ComputeManager) -> None:
    spec = replace(make_compute_spec(), admin_password="")
    with pytest.raises(Exception, match="no admin_password"):
        compute_manager.start_process(spec)
    assert compute_manager.pid(spec) is None


def test_a_pgbouncer_left_on_tcp_with_trust_is_restarted(
        make_compute_spec: Callable[..., ComputeSpec], compute_manager: ComputeManager,
        argon_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An older Argon's PgBouncer (TCP listener, trust) is not merely reloaded: a reload
    cannot close a listener."""
    import subprocess

    from argon.compute import PoolerManager, PoolerSpec
    from argon.compute import pooler as pooler_mod
    from tests.fixtures.common import free_port
    from tests.fixtures.compute import remove_socket_dir
    compute = make_compute_spec()
    compute_manager.start_process(compute)
    tcp = free_port()
    upstream = compute_manager.address(compute)
    assert upstream is not None
    spec = PoolerSpec(compute.endpoint_id, upstream, compute.admin_password, free_port())
    socket_dir = compute_manager.layout.pooler_socket_dir(compute.endpoint_id)
    real = pooler_mod.render_pgbouncer_ini

    def legacy(s: PoolerSpec, at: pooler_mod.PoolerPlacement,
               superuser: str = "cloud_admin") -> str:
        return (real(s, at, superuser).replace("listen_addr = \n", "listen_addr = 127.0.0.1\n")
                .replace(f"listen_port = {s.port}", f"listen_port = {tcp}")
                .replace("auth_type = scram-sha-256", "auth_type = trust"))
    mgr = PoolerManager(compute_manager.owner, compute_manager.layout)
    try:
        monkeypatch.setattr(pooler_mod, "render_pgbouncer_ini", legacy)
        spec_tcp = replace(spec, port=tcp)
        old = mgr.start_process(spec_tcp)
        monkeypatch.undo()

        def listening(pid: int) -> bool:
            out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
            return f"pid={pid}," in out
        assert listening(old)
        new = mgr.start_process(replace(spec, port=0))      # as Argon's repair and wake call it
        assert new != old and not listening(new)
        port = mgr.port(replace(spec, port=0))
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host=str(socket_dir), port=port, user="cloud_admin",
                            dbname="pgbouncer", password="", passfile="/nonexistent/.pgpass")
    finally:
        mgr.stop(replace(spec, port=0))
        remove_socket_dir(socket_dir)
