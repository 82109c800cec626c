"""Short unix socket directories.

A unix socket path is limited to 107 bytes (``sun_path`` is 108 with the NUL), and
Postgres appends ``/.s.PGSQL.<port>`` (up to 17 more bytes) to the directory.  Homes
deep in a CI workspace overflow that easily, so long ones fall back to ``/tmp``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from argon.pg import OsUser

SUN_PATH_MAX = 107
# "/.s.PGSQL.65535.lock" is the longest name Postgres creates inside the directory
SOCKET_SUFFIX_MAX = len("/.s.PGSQL.65535.lock")


def socket_dir_for(home: Path, endpoint_id: str) -> Path:
    """``<home>/run/<endpoint_id>`` if its sockets fit, else ``/tmp/argon-<hash>/<id>``."""
    preferred = home / "run" / endpoint_id
    if len(str(preferred).encode()) + SOCKET_SUFFIX_MAX <= SUN_PATH_MAX:
        return preferred
    digest = hashlib.sha256(str(home.absolute()).encode()).hexdigest()[:12]
    fallback = Path("/tmp") / f"argon-{digest}" / endpoint_id
    if len(str(fallback).encode()) + SOCKET_SUFFIX_MAX <= SUN_PATH_MAX:
        return fallback
    # an absurdly long endpoint id: hash it too (ids are ours, normally ~20 chars)
    short = hashlib.sha256(endpoint_id.encode()).hexdigest()[:16]
    return Path("/tmp") / f"argon-{digest}" / short


def prepare_socket_dir(path: Path, owner: OsUser) -> None:
    """Create ``path`` 0700 for ``owner`` (the Postgres account), its ``/tmp/argon-<hash>``
    parent 0711 so that account can cross it: Argon runs with umask 077, so a parent made
    on the way would be 0700 and Postgres or PgBouncer could not bind their socket."""
    parent = path.parent
    if parent.parent == Path("/tmp") and parent.name.startswith("argon-"):
        parent.mkdir(mode=0o711, exist_ok=True)
        os.chmod(parent, 0o711)
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    owner.chown(path)

