"""Client side of SCRAM-SHA-256 that logs in with a ClientKey instead of a password, no I/O.

The proxy authenticates the client itself (``scram.ScramServer``) and so learns the
client's ``ClientKey`` (from the proof, or from a cleartext password and the verifier's
salt).  Computes and their PgBouncers trust nobody, so the proxy logs into them as the
client's role with that key: the proof needs only ``ClientKey`` (``StoredKey`` is its
hash), and the server's signature is checked with the verifier's ``ServerKey``, so a
process that merely listens on the socket cannot pretend to be the compute.  Over the
private unix socket there is no TLS to bind to: the GS2 header is ``n,,``.

Argon sets role passwords as verifiers, so the salt and iteration count the server
announces are the ones in Argon's verifier; if they are not (the role's password was
changed on the compute behind Argon's back) the key cannot match and the login stops
with a clear error before any proof is sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass, field

from argon.pg.scram import ScramVerifier, salted_password
from argon.proxy.errors import ErrorKind, ProxyError

SCRAM = "SCRAM-SHA-256"
GS2_HEADER = "n,,"          # no channel binding over the unix socket


def client_key_from_password(password: str, verifier: ScramVerifier) -> bytes:
    """The ClientKey a cleartext password gives under ``verifier``'s salt and iterations."""
    salted = salted_password(password, verifier.salt, verifier.iterations)
    return hmac.new(salted, b"Client Key", hashlib.sha256).digest()


@dataclass(frozen=True)
class ScramKeys:
    """What the proxy keeps from the client's authentication to log in on its behalf."""

    client_key: bytes
    verifier: ScramVerifier      # its salt/iterations must match the server's; ServerKey


def _failed(detail: str) -> ProxyError:
    return ProxyError(ErrorKind.COMPUTE, f"could not authenticate to the compute: {detail}",
                      sqlstate="08006")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class ScramClient:
    """One exchange: ``initial(mechanisms)`` -> SASLInitialResponse body, then
    ``continue_(server_first)`` -> SASLResponse body, then ``final(server_final)``.
    Without the keys yet, ``server_first(data, verifier)`` then ``proof(client_key)``
    split the middle step, so the first round trip can happen before the client's
    proof has arrived."""

    keys: ScramKeys | None       # None until the client has proved its password
    nonce: str = field(default_factory=lambda: _b64(os.urandom(18)))
    _client_first_bare: str = ""
    _auth_message: bytes = b""
    _without_proof: str = ""
    _verifier: ScramVerifier | None = field(default=None, repr=False)

    def initial(self, offered: list[str]) -> bytes:
        if SCRAM not in offered:
            raise _failed(f"the server offers {', '.join(offered) or 'nothing'}, "
                          f"not {SCRAM}")
        # Postgres takes the user from the startup packet; an empty n= is what libpq sends
        self._client_first_bare = f"n=,r={self.nonce}"
        data = (GS2_HEADER + self._client_first_bare).encode()
        return SCRAM.encode() + b"\0" + struct.pack("!i", len(data)) + data

    def continue_(self, server_first: bytes) -> bytes:
        """server-first -> client-final, with the keys given at construction."""
        assert self.keys is not None
        self.server_first(server_first, self.keys.verifier)
        return self.proof(self.keys.client_key)

    def server_first(self, server_first: bytes, verifier: ScramVerifier) -> None:
        """Check the server's first message against the verifier Argon holds; the proof
        can then be made as soon as the ClientKey is known (``proof``)."""
        try:
            text = server_first.decode("ascii")
            attrs = dict(a.split("=", 1) for a in text.split(","))
            nonce, salt, iterations = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        except (UnicodeDecodeError, ValueError, KeyError):
            raise _failed("malformed SCRAM server-first message") from None
        if not nonce.startswith(self.nonce) or len(nonce) <= len(self.nonce):
            raise _failed("SCRAM nonce mismatch")
        if salt != verifier.salt or iterations != verifier.iterations:
            raise _failed("the role's password on the compute differs from the one Argon "
                          "knows; reset the role's password")
        self._verifier = verifier
        self._without_proof = f"c={_b64(GS2_HEADER.encode())},r={nonce}"
        self._auth_message = f"{self._client_first_bare},{text},{self._without_proof}".encode()

    def proof(self, client_key: bytes) -> bytes:
        """The SASLResponse body (client-final) once the client's key is known."""
        stored_key = hashlib.sha256(client_key).digest()
        signature = hmac.new(stored_key, self._auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        return f"{self._without_proof},p={_b64(proof)}".encode()

    def final(self, server_final: bytes) -> None:
        """Check the server's signature: only the holder of the ServerKey can make it."""
        try:
            text = server_final.decode("ascii")
        except UnicodeDecodeError:
            raise _failed("malformed SCRAM server-final message") from None
        if text.startswith("e="):
            raise _failed(f"the server refused the proof ({text[2:]})")
        if not text.startswith("v="):
            raise _failed("malformed SCRAM server-final message")
        try:
            received = base64.b64decode(text[2:].split(",", 1)[0], validate=True)
        except ValueError:
            raise _failed("malformed SCRAM server signature") from None
        if self._verifier is None:
            raise _failed("SCRAM server-final before server-first")
        expected = hmac.new(self._verifier.server_key, self._auth_message,
                            hashlib.sha256).digest()
        if not hmac.compare_digest(received, expected):
            raise _failed("the server's SCRAM signature is wrong")
