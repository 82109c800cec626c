"""The password of Argon's own service user ``cloud_admin``, one per project.

Every branch, restore and time-travel compute of a project is a copy of the project's
first data directory, so they all share one ``pg_authid``: the project is the natural
unit for the password.  It is derived, not stored: HMAC-SHA256 of the project id under a
master key that lives only in ``<home>/secrets/admin.key`` (mode 0600).  Nothing per
project has to be written to the metadata, a restored or branched data directory keeps
working, and computes of two projects never share a password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from pathlib import Path

from argon.errors import ArgonError

KEY_FILE = "admin.key"
_CONTEXT = b"argon cloud_admin password v1\0"


class AdminPasswords:
    """``for_project(project_id)``: the project's cloud_admin password (stable)."""

    def __init__(self, secrets_dir: Path) -> None:
        self._path = secrets_dir / KEY_FILE
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def for_project(self, project_id: str) -> str:
        digest = hmac.new(self._master(), _CONTEXT + project_id.encode(),
                          hashlib.sha256).digest()
        # URL-safe and ASCII: SASLprep is the identity, and it fits a libpq conninfo
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _master(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = _load_or_create(self._path)
            return self._key


def _load_or_create(path: Path) -> bytes:
    """Read the master key, creating it once (temp + fsync + link, so two racing
    processes agree on one key and a crash never leaves a short file)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, base64.b64encode(os.urandom(32)) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)       # fails if another process won the race: keep theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) < 32:
        raise ArgonError(f"{path} is damaged (expected 32 bytes of key); restore it from a "
                         "backup of the home")
    return key
