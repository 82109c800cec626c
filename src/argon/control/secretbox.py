"""Encryption at rest for what ``reveal_password`` must return.

Role passwords are stored as SCRAM verifiers; Neon can also reveal a password, so a copy
is kept encrypted (Fernet) with a key that lives only in the home (mode 0600).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from argon.errors import ArgonError


class SecretBox:
    def __init__(self, key_path: Path) -> None:
        if not key_path.exists():
            key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = key_path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, key_path)
        self._fernet = Fernet(key_path.read_bytes().strip())

    def seal(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ArgonError("stored secret cannot be decrypted: the home's key changed") from None
