"""Server side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, 7677, 5929), no I/O.

The proxy terminates TLS, so a client that asks for ``channel_binding=require`` binds to
the proxy's certificate (``tls-server-end-point``): the proxy must run SCRAM with the
client itself, against the role's verifier.  Behaviour follows Postgres'
``auth-scram.c``: an unknown role runs a mock exchange with a stable fake salt and fails
at the end with the same error as a wrong password, so role names cannot be probed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from argon.pg.scram import DEFAULT_ITERATIONS, ScramVerifier
from argon.proxy.errors import ProxyError, auth_failed, protocol_error

SCRAM = "SCRAM-SHA-256"
SCRAM_PLUS = "SCRAM-SHA-256-PLUS"
CB_TYPE = "tls-server-end-point"

# Per-process secret for mock salts: stable for one proxy run, unguessable outside it.
_MOCK_SECRET = os.urandom(32)


def mechanisms(channel_binding: bytes | None) -> list[str]:
    """Mechanisms to offer: PLUS only when there is a TLS certificate to bind to."""
    return [SCRAM_PLUS, SCRAM] if channel_binding is not None else [SCRAM]


def mock_verifier(user: str) -> ScramVerifier:
    salt = hmac.new(_MOCK_SECRET, user.encode(), hashlib.sha256).digest()[:16]
    return ScramVerifier(DEFAULT_ITERATIONS, salt, os.urandom(32), os.urandom(32))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _negotiation_error(msg: str) -> ProxyError:
    return protocol_error(f"SCRAM channel binding negotiation error: {msg}")


@dataclass
class ScramServer:
    """One SCRAM exchange: feed ``client_first`` then ``client_final``.

    ``channel_binding`` is the ``tls-server-end-point`` hash of the proxy's certificate when
    the connection is TLS (None without TLS).  ``verifier`` None means the role does not
    exist (or has no SCRAM secret): the exchange runs on a mock and fails at the end.
    """

    user: str
    verifier: ScramVerifier | None
    channel_binding: bytes | None
    _gs2_header: bytes = b""
    _cbind_used: bool = False
    _client_first_bare: str = ""
    _server_first: str = ""
    _nonce: str = ""
    client_key: bytes | None = None   # recovered from the proof once authenticated

    def client_first(self, mechanism: str, data: bytes) -> bytes:
        if mechanism not in mechanisms(self.channel_binding):
            raise protocol_error(f"client selected an invalid SASL authentication "
                                 f"mechanism: {mechanism}")
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise protocol_error("malformed SCRAM message: not ASCII") from None
        flag, sep1, rest = text.partition(",")
        authzid, sep2, bare = rest.partition(",")
        if not (sep1 and sep2):
            raise protocol_error("malformed SCRAM message: no GS2 header")
        if authzid:
            raise protocol_error("client uses authorization identity, but it is not supported")
        if mechanism == SCRAM_PLUS:
            if flag != f"p={CB_TYPE}":
                raise _negotiation_error(f"unsupported channel binding type {flag!r}")
            self._cbind_used = True
        elif flag == "y" and self.channel_binding is not None:
            # The client could have used channel binding and believes we cannot: a downgrade.
            raise _negotiation_error("client supports binding but thinks the server does not")
        elif flag not in ("n", "y"):
            raise _negotiation_error("client requires binding with a non-PLUS mechanism")
        self._gs2_header = f"{flag},{authzid},".encode()
        attrs = bare.split(",")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            raise protocol_error("malformed SCRAM message: expected username and nonce")
        if any(a.startswith("m=") for a in attrs[2:]):
            raise protocol_error("client requires an unsupported SCRAM extension")
        client_nonce = attrs[1][2:]
        if not client_nonce or any(c == "," or not 0x21 <= ord(c) <= 0x7E for c in client_nonce):
            raise protocol_error("malformed SCRAM message: invalid nonce")
        verifier = self.verifier or mock_verifier(self.user)
        self._client_first_bare = bare
        self._nonce = client_nonce + _b64(os.urandom(18))
        self._server_first = (f"r={self._nonce},s={_b64(verifier.salt)},"
                              f"i={verifier.iterations}")
        return self._server_first.encode()

    def client_final(self, data: bytes) -> bytes:
        """Check the proof; return the server-final message ("v=...") or raise."""
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise protocol_error("malformed SCRAM message: not ASCII") from None
        without_proof, sep, proof_b64 = text.rpartition(",p=")
        attrs = without_proof.split(",")
        if not sep or len(attrs) < 2 or not attrs[0].startswith("c=") \
                or not attrs[1].startswith("r="):
            raise protocol_error("malformed SCRAM message: expected channel binding, nonce "
                                 "and proof")
        expected_cb = self._gs2_header
        if self._cbind_used:
            assert self.channel_binding is not None
            expected_cb += self.channel_binding
        try:
            cbind = base64.b64decode(attrs[0][2:], validate=True)
            proof = base64.b64decode(proof_b64, validate=True)
        except ValueError:
            raise protocol_error("malformed SCRAM message: invalid base64") from None
        if not hmac.compare_digest(cbind, expected_cb):
            raise protocol_error("SCRAM channel binding check failed")
        if attrs[1][2:] != self._nonce:
            raise protocol_error("SCRAM nonce mismatch")
        verifier = self.verifier
        if verifier is None or len(proof) != 32:
            raise auth_failed(self.user)
        auth_message = ",".join((self._client_first_bare, self._server_first,
                                 without_proof)).encode()
        signature = hmac.new(verifier.stored_key, auth_message, hashlib.sha256).digest()
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), verifier.stored_key):
            raise auth_failed(self.user)
        self.client_key = client_key
        server_sig = hmac.new(verifier.server_key, auth_message, hashlib.sha256).digest()
        return f"v={_b64(server_sig)}".encode()
