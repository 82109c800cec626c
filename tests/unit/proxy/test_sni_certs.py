"""Exact-name certificates minted from the SNI callback: what a verifying client sees.

Each handshake runs in memory between Python's ssl (OpenSSL's hostname rules, as libpq
``verify-full`` applies them) with Argon's CA as its only trust anchor and the proxy's
server context.
"""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from argon.proxy.tls import ALPN_HTTP1, ALPN_POSTGRESQL, NameMinter, TlsConfig, mintable_name


def handshake(server_ctx: ssl.SSLContext, ca: Path, name: str, alpn: str = ALPN_POSTGRESQL
              ) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """Client and server SSLObjects after a full handshake for server name ``name``;
    raises ssl.SSLCertVerificationError when the client refuses the certificate."""
    client_ctx = ssl.create_default_context(cafile=str(ca))
    client_ctx.set_alpn_protocols([alpn])
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=name)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(10):
        for key, obj, out, peer_in in (("c", client, c_out, s_in), ("s", server, s_out, c_in)):
            if not done[key]:
                try:
                    obj.do_handshake()
                    done[key] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            return client, server
    raise AssertionError("handshake did not finish")


def names_in(der: bytes) -> list[str]:
    cert = x509.load_der_x509_certificate(der)
    return cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


@pytest.fixture
def tls(tmp_path: Path) -> TlsConfig:
    return TlsConfig.ensure(tmp_path / "tls", "localhost")


@pytest.mark.parametrize("name", ["ep-cool-x.localhost", "ep-cool-x-pooler.localhost",
                                  "api.localhost"])
def test_one_label_domain_gets_exact_names_that_verify(tls: TlsConfig, name: str) -> None:
    # *.localhost (the old certificate) is refused by OpenSSL for these very names
    assert tls.ca_file is not None
    client, server = handshake(tls.server_context(), tls.ca_file, name)
    der = client.getpeercert(binary_form=True)
    assert der is not None and names_in(der) == [name]
    # SCRAM-PLUS binds to what the client saw: the minted leaf, not the default cert
    assert tls.presented_binding(server) == hashlib.sha256(der).digest()
    assert tls.presented_binding(server) != tls.channel_binding()
    assert client.selected_alpn_protocol() == ALPN_POSTGRESQL


def test_two_label_domain_and_https_alpn(tmp_path: Path) -> None:
    tls = TlsConfig.ensure(tmp_path / "tls", "argon.localhost")
    assert tls.ca_file is not None
    client, _ = handshake(tls.https_context(), tls.ca_file, "api.argon.localhost", ALPN_HTTP1)
    der = client.getpeercert(binary_form=True)
    assert der is not None and names_in(der) == ["api.argon.localhost"]
    assert client.selected_alpn_protocol() == ALPN_HTTP1


@pytest.mark.parametrize("name", ["example.com", "www.localhost", "a.b.localhost",
                                  "ep-x.other.test", "localhost"])
def test_other_names_get_the_default_certificate_and_nothing_is_minted(
        tls: TlsConfig, name: str) -> None:
    assert tls.minter is not None and tls.ca_file is not None
    try:
        client, server = handshake(tls.server_context(), tls.ca_file, name)
    except ssl.SSLCertVerificationError:
        pass   # the default certificate does not name it: refused, as it should be
    else:
        der = client.getpeercert(binary_form=True)
        assert der is not None and "localhost" in names_in(der)
        assert tls.presented_binding(server) == tls.channel_binding()
    assert tls.minter.minted == 0


def test_mintable_names() -> None:
    assert mintable_name("EP-A.Argon.Localhost.", "argon.localhost") == "ep-a.argon.localhost"
    assert mintable_name("ep-a-pooler.argon.localhost", "argon.localhost")
    assert mintable_name("api.argon.localhost", "argon.localhost")
    for bad in ("apiauth.argon.localhost", "x.argon.localhost", "ep-a.b.argon.localhost",
                "ep-" + "a" * 70 + ".argon.localhost", "argon.localhost", "ep-a.localhost"):
        assert mintable_name(bad, "argon.localhost") is None, bad
    assert mintable_name("ep-a.localhost", None) is None


def test_cache_is_bounded_and_reused(tmp_path: Path) -> None:
    TlsConfig.ensure(tmp_path / "tls", "argon.localhost")
    minter = NameMinter.for_directory(tmp_path / "tls", "argon.localhost")
    assert minter is not None
    minter.cache_size = 2
    first = minter.leaf("ep-a.argon.localhost")
    assert minter.leaf("ep-a.argon.localhost") is first and minter.minted == 1
    for label in ("ep-b", "ep-c", "ep-d"):
        minter.leaf(f"{label}.argon.localhost")
    assert len(minter._leaves) == 2 and minter.minted == 4  # noqa: SLF001
    assert minter.leaf("nope.argon.localhost") is None and minter.minted == 4
    # the names key is private
    assert (tmp_path / "tls" / "names.key").stat().st_mode & 0o077 == 0


def test_a_users_own_certificate_is_shown_for_every_name(tmp_path: Path) -> None:
    made = TlsConfig.ensure(tmp_path / "own", "db.example.com")
    own = TlsConfig.load(made.cert_file, made.key_file)
    assert own.minter is None and made.ca_file is not None
    client, server = handshake(own.server_context(), made.ca_file, "ep-a.db.example.com")
    der = client.getpeercert(binary_form=True)
    assert der is not None and "*.db.example.com" in names_in(der)
    assert own.presented_binding(server) == own.channel_binding() == hashlib.sha256(der).digest()
