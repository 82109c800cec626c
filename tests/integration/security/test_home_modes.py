"""No other local account can read anything in Argon's home but the CA certificate
(issue 8, finding 2: ``argon.db`` with its SCRAM verifiers and API key digests, its
``-wal``/``-shm``, and the logs were 0644).

A real Argon after a start, a branch with a compute, a direct and a pooled connection;
then every path in the home is tried as ``nobody`` (open for files, list for
directories), and the modes are walked as root.  A home left by an older Argon (0644
files) is made private at the next start.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.argon_env import ArgonEnv, kill_leftover_postgres, make_env

pytestmark = [pytest.mark.timeout(600),
              pytest.mark.skipif(os.geteuid() != 0,
                                 reason="trying the home as another account needs root "
                                        "(runuser) and modes only matter across accounts")]

CLIENT_READABLE = {"tls/ca.crt"}

# Run by the system's python3 as `nobody`: which of the given paths it can read or list.
PROBE = r"""
import json, os, sys
readable = []
for path in json.load(sys.stdin):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as f:
                f.read(1)
        readable.append(path)
    except OSError:
        pass
print(json.dumps(readable))
"""


def _paths(home: Path) -> list[Path]:
    """Every directory and regular file in the home (sockets are not read or listed)."""
    out = []
    for root, dirs, files in os.walk(home):
        for name in [*dirs, *files]:
            path = Path(root) / name
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                out.append(path)
    return out


def _readable_by_nobody(home: Path) -> set[str]:
    paths = [str(p) for p in _paths(home)]
    res = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", PROBE],
                         input=json.dumps(paths), capture_output=True, text=True, timeout=120,
                         check=True)
    return {str(Path(p).relative_to(home)) for p in json.loads(res.stdout)}


def _open_to_others(home: Path) -> dict[str, str]:
    """Paths whose mode gives group or others read or write (directories may keep x)."""
    found = {}
    for path in _paths(home):
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        if mode & 0o066 and str(path.relative_to(home)) not in CLIENT_READABLE:
            found[str(path.relative_to(home))] = oct(mode)
    return found


@pytest.fixture
def busy_home() -> Iterator[ArgonEnv]:
    """An Argon whose home has seen a branch, computes and a pooled connection."""
    env = make_env("home-modes")
    env.start()
    try:
        project = env.default_project()
        pid = project["id"]
        r = env.api("POST", f"/projects/{pid}/branches",
                    json={"branch": {"name": "feature"}, "endpoints": [{"type": "read_write"}]})
        assert r.status_code == 201, r.text
        for pooled in (False, True):
            uri = env.api("GET", f"/projects/{pid}/connection_uri", params={
                "database_name": "neondb", "role_name": "neondb_owner",
                "pooled": str(pooled).lower()}).json()["uri"]
            with psycopg.connect(uri, autocommit=True, connect_timeout=60) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS t (v int)")
                conn.execute("INSERT INTO t VALUES (1)")
        yield env
    finally:
        env.stop()
        kill_leftover_postgres(env.home)


def test_nobody_can_read_only_the_ca_certificate(busy_home: ArgonEnv) -> None:
    home = busy_home.home
    # The files the finding named exist, and the walk reaches them as root.
    for name in ("argon.db", "argon.db-wal", "logs/argon.log"):
        assert (home / name).exists(), name
    assert any(home.glob("logs/ep-*.log")) and any(home.glob("run/pgbouncer/*/*.log"))
    readable = _readable_by_nobody(home)
    assert readable == CLIENT_READABLE, f"readable by nobody: {sorted(readable)}"


def test_no_path_in_the_home_is_open_to_group_or_others(busy_home: ArgonEnv) -> None:
    home = busy_home.home
    assert _open_to_others(home) == {}
    assert stat.S_IMODE(os.stat(home / "tls/ca.crt").st_mode) == 0o644
    for name in ("argon.db", "argon.db-wal", "argon.db-shm", "logs/argon.log"):
        assert stat.S_IMODE(os.stat(home / name).st_mode) == 0o600, name


def test_an_older_home_is_made_private_at_start(busy_home: ArgonEnv) -> None:
    env, home = busy_home, busy_home.home
    env.stop()
    opened = [home / "argon.db", home / "logs" / "argon.log", *home.glob("logs/ep-*.log"),
              *home.glob("timelines/*/manifest.json"), home / "tls" / "server.crt"]
    for path in opened:
        os.chmod(path, 0o644)
    for path in (home / "logs", *home.glob("timelines/tl-*")):
        os.chmod(path, 0o755)
    assert _open_to_others(home)
    env.start()
    assert _open_to_others(home) == {}
    assert _readable_by_nobody(home) == CLIENT_READABLE
    # Still working: the Postgres account crosses the home to its data and sockets.
    uri = env.api("GET", f"/projects/{env.default_project()['id']}/connection_uri", params={
        "database_name": "neondb", "role_name": "neondb_owner"}).json()["uri"]
    with psycopg.connect(uri, autocommit=True, connect_timeout=60) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
