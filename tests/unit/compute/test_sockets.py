"""Unix socket directories stay under the 107-byte sun_path limit."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import uuid
from pathlib import Path

from argon.compute import socket_dir_for
from argon.compute.sockets import SUN_PATH_MAX, prepare_socket_dir
from argon.pg import OsUser

LONGEST_SOCKET = "/.s.PGSQL.65535.lock"


def test_short_home_uses_run_dir() -> None:
    assert socket_dir_for(Path("/var/lib/argon"), "ep-a-1") == Path("/var/lib/argon/run/ep-a-1")


def test_long_home_falls_back_to_tmp_and_fits() -> None:
    home = Path("/home/runner/work/some-org/some-very-long-repository-name/.argon/home/x")
    got = socket_dir_for(home, "ep-cool-darkness-123456")
    assert got.parent.parent == Path("/tmp")
    assert len(str(got) + LONGEST_SOCKET) <= SUN_PATH_MAX


def test_fallback_is_stable_per_home_and_distinct_between_homes() -> None:
    a = Path("/x" * 50)
    b = Path("/y" * 50)
    assert socket_dir_for(a, "ep-1") == socket_dir_for(a, "ep-1")
    assert socket_dir_for(a, "ep-1").parent != socket_dir_for(b, "ep-1").parent
    assert socket_dir_for(a, "ep-1") != socket_dir_for(a, "ep-2")


def test_even_a_huge_endpoint_id_fits() -> None:
    got = socket_dir_for(Path("/" + "h" * 100), "ep-" + "z" * 200)
    assert len(str(got) + LONGEST_SOCKET) <= SUN_PATH_MAX


def test_boundary_exactly_at_limit() -> None:
    for n in range(1, 120):
        home = Path("/" + "a" * n)
        got = socket_dir_for(home, "ep-b")
        assert len(str(got).encode() + LONGEST_SOCKET.encode()) <= SUN_PATH_MAX


def _me() -> OsUser:
    entry = pwd.getpwuid(os.geteuid())
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def test_a_fallback_parent_made_under_umask_077_is_crossable() -> None:
    # a home whose endpoint directory fits under run/ but whose "-pooler" one does not:
    # the pooler's directory is the first to need /tmp/argon-<hash>
    home = Path("/tmp") / ("h" * 46)
    pooler = socket_dir_for(home, "ep-solitary-truth-ibrsdhy2-pooler")
    assert socket_dir_for(home, "ep-solitary-truth-ibrsdhy2") == home / "run" / \
        "ep-solitary-truth-ibrsdhy2"
    assert pooler.parent.parent == Path("/tmp"), pooler
    parent = pooler.parent.with_name(f"argon-test-{uuid.uuid4().hex[:8]}")
    target = parent / pooler.name
    old = os.umask(0o077)
    try:
        prepare_socket_dir(target, _me())
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(parent.stat().st_mode) == 0o711   # others may cross, not list
        assert stat.S_IMODE(target.stat().st_mode) == 0o700
    finally:
        shutil.rmtree(parent)
