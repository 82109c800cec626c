"""The proxy's SCRAM server against an independent client computation (RFC 5802)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from argon.pg.scram import make_verifier, salted_password
from argon.proxy.auth.scram import SCRAM, SCRAM_PLUS, ScramServer, mechanisms
from argon.proxy.errors import ErrorKind, ProxyError

CB = hashlib.sha256(b"certificate").digest()


def run_client(server: ScramServer, password: str, *, mech: str = SCRAM,
               gs2: str = "n,,", cb_data: bytes = b"") -> bytes:
    cnonce = "clientnonce123"
    first_bare = f"n=,r={cnonce}"
    server_first = server.client_first(mech, (gs2 + first_bare).encode()).decode()
    attrs = dict(a.split("=", 1) for a in server_first.split(","))
    assert attrs["r"].startswith(cnonce)
    salted = salted_password(password, base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    without_proof = (f"c={base64.b64encode(gs2.encode() + cb_data).decode()},"
                     f"r={attrs['r']}")
    auth = f"{first_bare},{server_first},{without_proof}".encode()
    sig = hmac.new(stored, auth, hashlib.sha256).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig))).decode()
    final = server.client_final(f"{without_proof},p={proof}".encode())
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert final == b"v=" + base64.b64encode(hmac.new(server_key, auth, hashlib.sha256).digest())
    return client_key


def test_plain_scram_succeeds_and_recovers_client_key() -> None:
    server = ScramServer("u", make_verifier("pw"), None)
    key = run_client(server, "pw")
    assert server.client_key == key


def test_scram_plus_binds_to_certificate() -> None:
    server = ScramServer("u", make_verifier("pw"), CB)
    run_client(server, "pw", mech=SCRAM_PLUS, gs2="p=tls-server-end-point,,", cb_data=CB)


def test_scram_plus_with_wrong_binding_fails() -> None:
    server = ScramServer("u", make_verifier("pw"), CB)
    with pytest.raises(ProxyError, match="channel binding"):
        run_client(server, "pw", mech=SCRAM_PLUS, gs2="p=tls-server-end-point,,",
                   cb_data=b"other")


def test_wrong_password_is_postgres_error() -> None:
    with pytest.raises(ProxyError) as e:
        run_client(ScramServer("u", make_verifier("pw"), None), "bad")
    assert e.value.sqlstate == "28P01" and e.value.kind is ErrorKind.AUTH
    assert e.value.client_message == 'password authentication failed for user "u"'


def test_unknown_role_fails_like_wrong_password() -> None:
    with pytest.raises(ProxyError) as e:
        run_client(ScramServer("ghost", None, None), "pw")
    assert e.value.sqlstate == "28P01"


def test_downgrade_is_refused() -> None:
    # "y": the client supports binding but thinks we do not, while we offered PLUS.
    with pytest.raises(ProxyError, match="negotiation"):
        run_client(ScramServer("u", make_verifier("pw"), CB), "pw", gs2="y,,")


def test_mechanisms_offered() -> None:
    assert mechanisms(None) == [SCRAM]
    assert mechanisms(CB) == [SCRAM_PLUS, SCRAM]


@pytest.mark.parametrize("data", [b"", b"n,,", b"x,,n=,r=a", b"n,a=z,n=,r=a", b"n,,n=,r=",
                                  b"\xff\xfe", b"n,,n=,r=abc,m=ext"])
def test_malformed_client_first(data: bytes) -> None:
    with pytest.raises(ProxyError) as e:
        ScramServer("u", make_verifier("pw"), None).client_first(SCRAM, data)
    assert e.value.kind is ErrorKind.PROTOCOL
