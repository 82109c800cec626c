"""ScramClient against the proxy's own ScramServer: the key the server recovers logs in."""

from __future__ import annotations

import struct

import pytest

from argon.pg.scram import make_verifier
from argon.proxy.auth.scram import ScramServer
from argon.proxy.auth.scram_client import (GS2_HEADER, SCRAM, ScramClient, ScramKeys,
                                           client_key_from_password)
from argon.proxy.errors import ProxyError


def _exchange(keys: ScramKeys, server: ScramServer) -> ScramClient:
    client = ScramClient(keys)
    initial = client.initial([SCRAM])
    mech, rest = initial.split(b"\0", 1)
    (length,) = struct.unpack("!i", rest[:4])
    data = rest[4:]
    assert mech == SCRAM.encode() and len(data) == length and data.startswith(b"n,,")
    final = client.continue_(server.client_first(SCRAM, data))
    client.final(server.client_final(final))
    return client


def test_key_from_password_logs_in_and_is_what_the_server_recovers() -> None:
    verifier = make_verifier("pw")
    key = client_key_from_password("pw", verifier)
    server = ScramServer("u", verifier, None)
    _exchange(ScramKeys(key, verifier), server)
    assert server.client_key == key
    assert GS2_HEADER == "n,,"


def test_wrong_key_fails_at_the_server() -> None:
    verifier = make_verifier("pw")
    server = ScramServer("u", verifier, None)
    with pytest.raises(ProxyError, match="password authentication failed"):
        _exchange(ScramKeys(client_key_from_password("other", verifier), verifier), server)


def test_no_scram_offered_and_nonce_tampering() -> None:
    verifier = make_verifier("pw")
    client = ScramClient(ScramKeys(client_key_from_password("pw", verifier), verifier))
    with pytest.raises(ProxyError, match="not SCRAM-SHA-256"):
        client.initial(["SCRAM-SHA-256-PLUS"])
    client.initial([SCRAM])
    with pytest.raises(ProxyError, match="nonce"):
        client.continue_(b"r=someone-elses-nonce,s=AAAA,i=4096")
    with pytest.raises(ProxyError, match="malformed"):
        client.continue_(b"garbage")
