"""SCRAM-SHA-256 verifiers as Postgres stores them (RFC 5802/7677).

A verifier is ``SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>``.
Argon stores role passwords only in this form (plus an encrypted copy for
``reveal_password``), sets them in Postgres as verifiers so that the plaintext never
reaches a server log, and checks cleartext passwords (HTTP/WebSocket paths) against them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from argon.errors import InvalidInput

DEFAULT_ITERATIONS = 4096


@dataclass(frozen=True)
class ScramVerifier:
    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    @classmethod
    def parse(cls, text: str) -> ScramVerifier:
        try:
            mech, rest = text.split("$", 1)
            iter_salt, keys = rest.split("$", 1)
            iterations, salt = iter_salt.split(":", 1)
            stored, server = keys.split(":", 1)
            if mech != "SCRAM-SHA-256":
                raise ValueError(mech)
            return cls(int(iterations), base64.b64decode(salt, validate=True),
                       base64.b64decode(stored, validate=True),
                       base64.b64decode(server, validate=True))
        except (ValueError, TypeError):
            raise InvalidInput("not a SCRAM-SHA-256 verifier") from None

    def __str__(self) -> str:
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        return (f"SCRAM-SHA-256${self.iterations}:{b64(self.salt)}"
                f"${b64(self.stored_key)}:{b64(self.server_key)}")

    def verify_password(self, password: str) -> bool:
        salted = salted_password(password, self.salt, self.iterations)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        return hmac.compare_digest(hashlib.sha256(client_key).digest(), self.stored_key)


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    # Postgres applies SASLprep; for the ASCII passwords Argon generates it is the identity.
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)


def make_verifier(password: str, *, iterations: int = DEFAULT_ITERATIONS,
                  salt: bytes | None = None) -> ScramVerifier:
    salt = salt if salt is not None else os.urandom(16)
    salted = salted_password(password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return ScramVerifier(iterations, salt, hashlib.sha256(client_key).digest(), server_key)
