"""Preloading: pg_stat_statements always, argon.so only where it was built, with one
warning per install when it is missing (a compute still starts)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from argon.compute import pgext
from argon.pg import PgInstall


def _install(root: Path, *libraries: str) -> PgInstall:
    (root / "bin").mkdir(parents=True)
    (root / "lib").mkdir()
    for name in libraries:
        (root / "lib" / f"{name}.so").write_bytes(b"")
    return PgInstall(18, "18.6", root / "bin", "embedded")


def test_built_library_is_preloaded_with_its_settings(tmp_path: Path) -> None:
    out = pgext.preload_settings(_install(tmp_path, "pg_stat_statements", "argon"))
    assert out["shared_preload_libraries"] == "pg_stat_statements,argon"
    assert out["argon.privileged_role"] == "neon_superuser"
    allowed = out["argon.allowed_extensions"].split(",")
    assert {"vector", "pg_stat_statements", "pg_prewarm", "hstore"} <= set(allowed)
    assert not {"file_fdw", "adminpack", "pageinspect", "plpython3u"} & set(allowed)


def test_missing_library_warns_once_and_still_preloads_pg_stat_statements(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    install = _install(tmp_path, "pg_stat_statements")
    with caplog.at_level(logging.WARNING, logger="argon.compute.pgext"):
        first = pgext.preload_settings(install)
        second = pgext.preload_settings(install)
    assert first == second == {"shared_preload_libraries": "pg_stat_statements"}
    warnings = [r for r in caplog.records if "scripts/build-pgext.sh" in r.getMessage()]
    assert len(warnings) == 1


def test_allow_list_is_closed_under_requires() -> None:
    """CASCADE from an allowed extension only pulls in allowed ones (checked against
    every install here; the extension refuses anything else at run time too)."""
    from argon.pg.binaries import discover_installs

    for install in discover_installs():
        share = _sharedir(install)
        for name in pgext.ALLOWED_EXTENSIONS:
            control = share / f"{name}.control"
            if not control.exists():
                continue
            for line in control.read_text().splitlines():
                if line.strip().startswith("requires"):
                    required = line.split("=", 1)[1].strip().strip("'").split(",")
                    assert {r.strip() for r in required} <= set(pgext.ALLOWED_EXTENSIONS)


def _sharedir(install: PgInstall) -> Path:
    embedded = install.bindir.parent / "share" / "extension"
    if embedded.is_dir():
        return embedded
    return Path("/usr/share/postgresql") / str(install.version) / "extension"
