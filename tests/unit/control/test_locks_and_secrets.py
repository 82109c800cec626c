from __future__ import annotations

import threading
from pathlib import Path

import pytest

from argon.control.context import LockTable
from argon.control.secretbox import SecretBox
from argon.errors import ArgonError, Locked


def test_second_holder_gets_locked_error() -> None:
    locks = LockTable()
    entered = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with locks.hold("branch:x"):
            entered.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    entered.wait(5)
    with pytest.raises(Locked, match="retry"):
        with locks.hold("branch:x", what="branch x"):
            pass
    release.set()
    t.join()
    with locks.hold("branch:x"):
        pass


def test_secretbox_round_trip_and_key_file_mode(tmp_path: Path) -> None:
    key = tmp_path / "k" / "fernet.key"
    box = SecretBox(key)
    token = box.seal("npg_secret")
    assert "npg_secret" not in token
    assert SecretBox(key).open(token) == "npg_secret"
    assert key.stat().st_mode & 0o777 == 0o600
    other = SecretBox(tmp_path / "other.key")
    with pytest.raises(ArgonError, match="key changed"):
        other.open(token)
