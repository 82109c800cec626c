"""Files in an Argon home that several parts read: the run state and the bootstrap key;
and the home's modes: private to Argon's account, except what others must reach.

The home holds role SCRAM verifiers and API key digests (the metadata database), logs,
keys and Postgres data, so no other local account may read anything in it.  Two
exceptions: the CA certificate (``tls/ca.crt``), which clients verify the server with,
and the directories the Postgres account must cross to reach its data and sockets,
which are 0711 (enter, not list) and made so explicitly where they are created.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

STATE_FILE = "run/argon.json"
BOOTSTRAP_KEY_FILE = "secrets/bootstrap_api_key"
CA_CERT_FILE = "tls/ca.crt"
# Files 0600 and directories 0700 unless made otherwise on purpose.
PRIVATE_UMASK = 0o077
# Postgres keeps its own strict modes inside a data directory (and may be running).
_OWN_MODES = {"pgdata"}


def set_private_umask() -> None:
    """Everything Argon (and the processes it starts) creates is private by default."""
    os.umask(PRIVATE_UMASK)


def restrict_home(home: Path) -> list[str]:
    """Take read and write for group and others away from everything in ``home`` (a home
    made by an older Argon had 0644 files); directories keep their execute bits, so the
    ones the Postgres account crosses stay crossable.  Returns the paths changed."""
    changed: list[str] = []
    ca_cert = home / CA_CERT_FILE
    for root, dirs, files in os.walk(home):
        dirs[:] = [d for d in dirs if d not in _OWN_MODES]
        for name in [*dirs, *files]:
            path = Path(root) / name
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                wanted = mode & ~0o066
            elif stat.S_ISREG(st.st_mode):
                wanted = 0o644 if path == ca_cert else mode & ~0o077
            else:
                continue  # symlinks and sockets: sockets live in 0700 directories
            if wanted != mode:
                os.chmod(path, wanted)
                changed.append(str(path.relative_to(home)))
    return changed


def write_private(path: Path, text: str) -> None:
    """Write a file readable only by its owner, atomically (temp, fsync, rename)."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def read_state(home: Path) -> dict[str, Any] | None:
    """The running platform's URLs and ports, or None when it is not running."""
    try:
        return json.loads((home / STATE_FILE).read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None
