"""Wire parsing, generated certificates, cancel keys."""

from __future__ import annotations

import asyncio
import os
import stat
import struct
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from argon.proxy import TlsConfig, pq
from argon.proxy.backend import ComputeAddress
from argon.proxy.cancel import CancelMap
from argon.proxy.errors import ProxyError


def test_startup_roundtrip() -> None:
    params = {"user": "u", "database": "d", "options": "endpoint=ep-a"}
    packet = pq.startup_message(params)
    assert pq.startup_length(packet[:4]) == len(packet)
    parsed = pq.parse_startup(packet)
    assert parsed == pq.StartupMessage(pq.PROTOCOL_3_0, params)


def test_special_requests() -> None:
    assert pq.parse_startup(struct.pack("!ii", 8, pq.SSL_REQUEST_CODE)) == pq.SslRequest()
    assert pq.parse_startup(struct.pack("!ii", 8, pq.GSSENC_REQUEST_CODE)) == pq.GssEncRequest()
    assert pq.parse_startup(pq.cancel_request(7, b"abcd")) == pq.CancelRequest(7, b"abcd")


@given(st.binary(min_size=8, max_size=300))
def test_parse_startup_never_crashes(data: bytes) -> None:
    try:
        pq.parse_startup(data)
    except ProxyError as e:
        assert e.sqlstate == "08P01"


def test_error_response_fields() -> None:
    from argon.proxy.errors import auth_failed
    msg = pq.error_response(auth_failed("bob"))
    kind, body, used = pq.split_message(msg, 1000) or (b"", b"", 0)
    assert kind == b"E" and used == len(msg)
    fields = pq.parse_error_fields(body)
    assert fields["C"] == "28P01" and fields["S"] == "FATAL"


def test_generated_certificates(tmp_path: Path) -> None:
    cfg = TlsConfig.ensure(tmp_path / "tls", "argon.test")
    for key in ("ca.key", "server.key"):
        assert stat.S_IMODE(os.stat(tmp_path / "tls" / key).st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cfg.cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"*.argon.test", "argon.test", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert len(cfg.channel_binding()) == 32
    # A second start reuses the files (same certificate, same binding).
    again = TlsConfig.ensure(tmp_path / "tls", "argon.test")
    assert again.channel_binding() == cfg.channel_binding()


def test_user_certificate_must_load(tmp_path: Path) -> None:
    (tmp_path / "bad.crt").write_text("nope")
    (tmp_path / "bad.key").write_text("nope")
    from argon.errors import InvalidInput
    with pytest.raises(InvalidInput, match="cannot load the TLS certificate"):
        TlsConfig.load(tmp_path / "bad.crt", tmp_path / "bad.key")


def test_cancel_map_keys_are_unique_and_unregistered() -> None:
    m = CancelMap()
    addr = ComputeAddress("/nonexistent", 5432)
    keys = {m.register(addr, 100, b"kkkk") for _ in range(100)}
    assert len(keys) == 100 and len(m) == 100
    for k in keys:
        m.unregister(*k)
    assert len(m) == 0
    assert asyncio.run(m.cancel(1, b"zzzz")) is False
