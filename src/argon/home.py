"""Files in an Argon home that several parts read: the run state and the bootstrap key."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_FILE = "run/argon.json"
BOOTSTRAP_KEY_FILE = "secrets/bootstrap_api_key"


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
