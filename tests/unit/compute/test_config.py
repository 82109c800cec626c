"""Pure rendering: postgresql.conf, pg_hba.conf, memory sizing, pgbouncer.ini."""

from __future__ import annotations

from pathlib import Path

import pytest

from argon.compute import (ComputeAddress, ComputeSpec, ComputeState, Placement, PoolerSpec,
                           memory_settings, render_config as _render_config, render_hba,
                           render_pgbouncer_ini)
from argon.compute.pooler import PoolerPlacement
from argon.compute.config import MEMORY_TABLE
from argon.errors import InvalidInput
from argon.pg import PgInstall

PG18 = PgInstall(18, "18.6", Path("/opt/pg18/bin"), "embedded")
PG15 = PgInstall(15, "15.18", Path("/usr/lib/postgresql/15/bin"), "system")


def spec(**kw: object) -> ComputeSpec:
    base: dict[str, object] = dict(endpoint_id="ep-cool-darkness-123456", timeline_id="tl",
                                   install=PG18, port=55001)
    base.update(kw)
    return ComputeSpec(**base)  # type: ignore[arg-type]


AT = Placement(pgdata=Path("/d/pg"), socket_dir=Path("/run/a/ep"), log_path=Path("/logs/ep.log"))


def render_config(s: ComputeSpec) -> str:
    return _render_config(s, AT)


def settings_of(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split(" = ", 1)
            out.append((key, value))
    return out


def test_config_is_deterministic_with_header_and_storage_include_last() -> None:
    text = render_config(spec())
    assert text == render_config(spec())
    assert text.splitlines()[0].startswith("# managed by Argon")
    pairs = settings_of(text)
    assert pairs[0] == ("include_if_exists", "'postgresql.base.conf'")
    assert pairs[-1] == ("include_if_exists", "'argon.storage.conf'")
    values = dict(pairs[1:-1])
    assert values["port"] == "'55001'"
    assert values["listen_addresses"] == "''"      # unix socket only
    assert values["unix_socket_directories"] == "'/run/a/ep'"
    assert values["cluster_name"] == "'ep-cool-darkness-123456'"


def test_each_section_is_sorted() -> None:
    text = render_config(spec(pg_settings={"work_mem": "8MB", "application_name": "a"}))
    sections = text.split("\n\n")
    for section in sections[2:-1]:
        keys = [k for k, _ in settings_of(section)]
        assert keys == sorted(keys) and keys


def test_user_settings_override_sizing_and_are_quoted() -> None:
    text = render_config(spec(pg_settings={"work_mem": "64MB",
                                           "application_name": "it's"}))
    values = dict(settings_of(text))
    assert values["work_mem"] == "'64MB'"
    assert values["application_name"] == "'it''s'"


@pytest.mark.parametrize("name", ["port", "listen_addresses", "archive_command",
                                  "restore_command", "recovery_target_lsn", "hba_file",
                                  "unix_socket_directories", "PORT"])
def test_managed_settings_cannot_be_overridden(name: str) -> None:
    # Off the pg_settings allow-list; render_config checks it again (rows stored earlier).
    with pytest.raises(InvalidInput, match="cannot be set per endpoint"):
        render_config(spec(pg_settings={name: "x"}))


@pytest.mark.parametrize("name", ["work mem", "a;b", "x = 1\nport", "", "1abc"])
def test_bad_setting_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="cannot be set per endpoint"):
        render_config(spec(pg_settings={name: "1"}))


def test_value_with_newline_is_refused() -> None:
    with pytest.raises(InvalidInput, match="without control characters"):
        render_config(spec(pg_settings={"work_mem": "4MB\nport = 1"}))


def test_version_facts() -> None:
    assert "allow_alter_system = 'off'" in render_config(spec())
    assert "allow_alter_system" not in render_config(spec(install=PG15))


def test_memory_table_rows() -> None:
    assert memory_settings(0.25) == {
        "shared_buffers": "128MB", "effective_cache_size": "768MB", "work_mem": "4MB",
        "maintenance_work_mem": "64MB", "max_connections": "112"}
    assert memory_settings(1)["max_connections"] == "450"
    assert memory_settings(3) == memory_settings(2)          # largest row not above cu_max
    assert memory_settings(56) == memory_settings(16)
    assert memory_settings(0.75)["shared_buffers"] == "256MB"


def test_memory_grows_with_cu() -> None:
    rows = [memory_settings(r.cu) for r in MEMORY_TABLE]
    for key in ("shared_buffers", "effective_cache_size", "max_connections"):
        nums = [int(r[key].removesuffix("MB")) for r in rows]
        assert nums == sorted(nums)


def test_config_uses_cu_max() -> None:
    values = dict(settings_of(render_config(spec(cu_min=0.25, cu_max=2))))
    assert values["shared_buffers"] == "'1024MB'"


def test_too_small_cu_is_refused() -> None:
    with pytest.raises(InvalidInput, match="at least 0.25"):
        memory_settings(0.1)


def test_hba() -> None:
    rows = [line.split() for line in render_hba().splitlines() if not line.startswith("#")]
    assert ["local", "all", "all", "scram-sha-256"] in rows
    assert ["local", "replication", "all", "scram-sha-256"] in rows
    assert ["host", "all", "all", "127.0.0.1/32", "scram-sha-256"] in rows
    assert ["host", "all", "all", "::1/128", "scram-sha-256"] in rows
    assert all(r[-1] == "scram-sha-256" for r in rows)   # nobody trusted, Argon neither
    boot = [line.split() for line in render_hba(bootstrap=True).splitlines()
            if not line.startswith("#")]
    assert [r for r in boot if r[-1] != "scram-sha-256"] == [
        ["local", "all", "cloud_admin", "trust"]]   # the one-off upgrade, socket only


def test_state_values_are_neons() -> None:
    assert [s.value for s in ComputeState] == ["init", "active", "idle"]


def test_pgbouncer_ini() -> None:
    ps = PoolerSpec("ep-x", ComputeAddress("/run/a/ep", 55001), "pw", 6432, pool_size=7)
    text = render_pgbouncer_ini(ps, PoolerPlacement(Path("/run/a/ep-pooler"), Path("/w/ep-x")))
    assert "* = host=/run/a/ep port=55001" in text
    for line in ("pool_mode = transaction", "auth_type = scram-sha-256", "listen_port = 6432",
                 "listen_addr = ", "unix_socket_dir = /run/a/ep-pooler",
                 "auth_file = /w/ep-x/auth_file.txt", "auth_user = cloud_admin",
                 "default_pool_size = 7", "pidfile = /w/ep-x/pgbouncer.pid"):
        assert line in text.splitlines()
    ignored = next(l for l in text.splitlines() if l.startswith("ignore_startup_parameters"))
    # Neon's pooler ignores only extra_float_digits; options reach PgBouncer (issue 9)
    assert ignored.split(" = ")[1].split(",") == ["extra_float_digits"]
