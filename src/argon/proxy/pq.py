"""Postgres wire protocol messages the proxy reads and writes (protocol 3.0), no I/O.

Startup-phase messages (untyped: int32 length, int32 code, body) and the few typed
messages of authentication are parsed and built here; after authentication the proxy
relays bytes without looking at them.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from argon.proxy.errors import ProxyError, protocol_error

PROTOCOL_3_0 = 3 << 16
CANCEL_REQUEST_CODE = 80877102
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104

# Postgres' own bound (MAX_STARTUP_PACKET_LENGTH); larger startup packets are garbage.
MAX_STARTUP_LEN = 10_000
# Authentication messages (SASL, passwords) are small; anything larger is an attack.
MAX_AUTH_MESSAGE_LEN = 8192

AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12

_I32 = struct.Struct("!i")
_HEADER = struct.Struct("!ci")


@dataclass(frozen=True)
class StartupMessage:
    version: int
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CancelRequest:
    pid: int
    key: bytes


@dataclass(frozen=True)
class SslRequest:
    pass


@dataclass(frozen=True)
class GssEncRequest:
    pass


StartupPacket = StartupMessage | CancelRequest | SslRequest | GssEncRequest


def startup_length(header: bytes) -> int:
    """The total length announced by the first 4 bytes of a startup packet, checked."""
    (length,) = _I32.unpack_from(header)
    if length < 8 or length > MAX_STARTUP_LEN:
        raise protocol_error("invalid length of startup packet")
    return length


def parse_startup(packet: bytes) -> StartupPacket:
    """Parse a whole startup-phase packet (length prefix included)."""
    if len(packet) < 8:
        raise protocol_error("invalid length of startup packet")
    (code,) = _I32.unpack_from(packet, 4)
    if code == SSL_REQUEST_CODE and len(packet) == 8:
        return SslRequest()
    if code == GSSENC_REQUEST_CODE and len(packet) == 8:
        return GssEncRequest()
    if code == CANCEL_REQUEST_CODE:
        # 4-byte keys (protocol 3.0); protocol 3.2 allows up to 256 bytes.
        if not 16 <= len(packet) <= 8 + 4 + 256:
            raise protocol_error("invalid length of cancel request")
        (pid,) = _I32.unpack_from(packet, 8)
        return CancelRequest(pid, bytes(packet[12:]))
    if code >> 16 != 3:
        raise protocol_error(f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}: "
                             "server supports 3.0 to 3.0")
    body = bytes(packet[8:])
    if not body.endswith(b"\x00"):
        raise protocol_error("invalid startup packet layout: expected terminator as last byte")
    content = body[:-1]
    if content and not content.endswith(b"\x00"):
        raise protocol_error("invalid startup packet layout: expected terminator as last byte")
    parts = content[:-1].split(b"\x00") if content else []
    if len(parts) % 2:
        raise protocol_error("invalid startup packet layout: odd number of strings")
    params: dict[str, str] = {}
    try:
        for i in range(0, len(parts), 2):
            params[parts[i].decode()] = parts[i + 1].decode()
    except UnicodeDecodeError:
        raise protocol_error("invalid startup packet: parameters are not UTF-8") from None
    return StartupMessage(code, params)


def parse_sasl_initial(body: bytes) -> tuple[str, bytes]:
    """SASLInitialResponse body: mechanism name, then int32 length and the data."""
    end = body.find(b"\x00")
    if end < 0 or len(body) < end + 5:
        raise protocol_error("malformed SASLInitialResponse message")
    mech = body[:end].decode("ascii", "replace")
    (n,) = _I32.unpack_from(body, end + 1)
    data = body[end + 5:]
    if n != len(data):
        raise protocol_error("malformed SASLInitialResponse message")
    return mech, data


def parse_password(body: bytes) -> str:
    if not body.endswith(b"\x00"):
        raise protocol_error("invalid password packet")
    try:
        return body[:-1].decode()
    except UnicodeDecodeError:
        raise protocol_error("invalid password packet: not UTF-8") from None


def message(kind: bytes, body: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(body) + 4) + body


def auth(code: int, data: bytes = b"") -> bytes:
    return message(b"R", _I32.pack(code) + data)


def auth_sasl(mechanisms: list[str]) -> bytes:
    return _auth_sasl(tuple(mechanisms))


@functools.lru_cache(maxsize=8)
def _auth_sasl(mechanisms: tuple[str, ...]) -> bytes:
    return auth(AUTH_SASL, b"".join(m.encode() + b"\x00" for m in mechanisms) + b"\x00")


def backend_key_data(pid: int, key: bytes) -> bytes:
    return message(b"K", _I32.pack(pid) + key)


def negotiate_protocol_version(newest_minor: int, unrecognized: list[str]) -> bytes:
    body = _I32.pack(PROTOCOL_3_0 | newest_minor) + _I32.pack(len(unrecognized))
    return message(b"v", body + b"".join(o.encode() + b"\x00" for o in unrecognized))


def error_response(err: ProxyError) -> bytes:
    fields = [(b"S", err.severity), (b"V", err.severity), (b"C", err.sqlstate),
              (b"M", err.client_message)]
    if err.hint:
        fields.append((b"H", err.hint))
    body = b"".join(k + v.encode() + b"\x00" for k, v in fields) + b"\x00"
    return message(b"E", body)


def startup_message(params: dict[str, str]) -> bytes:
    body = _I32.pack(PROTOCOL_3_0) + b"".join(
        k.encode() + b"\x00" + v.encode() + b"\x00" for k, v in params.items()) + b"\x00"
    return _I32.pack(len(body) + 4) + body


def cancel_request(pid: int, key: bytes) -> bytes:
    return _I32.pack(16 if len(key) == 4 else 12 + len(key)) + _I32.pack(
        CANCEL_REQUEST_CODE) + _I32.pack(pid) + key


def split_message(buf: bytes | bytearray, max_len: int) -> tuple[bytes, bytes, int] | None:
    """(type, body, consumed) of the first whole typed message in ``buf``, or None."""
    if len(buf) < 5:
        return None
    kind, length = _HEADER.unpack_from(buf)
    if length < 4 or length > max_len:
        raise protocol_error(f"invalid message length {length}")
    if len(buf) < 1 + length:
        return None
    return kind, bytes(buf[5:1 + length]), 1 + length


def parse_error_fields(body: bytes) -> dict[str, str]:
    """Fields of an ErrorResponse/NoticeResponse body, keyed by their one-letter code."""
    out: dict[str, str] = {}
    for part in body.split(b"\x00"):
        if part:
            out[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return out


def int32(data: bytes, offset: int = 0) -> int:
    return int(_I32.unpack_from(data, offset)[0])


__all__ = ["ProxyError", "StartupMessage", "CancelRequest", "SslRequest", "GssEncRequest"]


async def read_message(read_exact: Callable[[int], Awaitable[bytes]],
                       max_len: int) -> tuple[bytes, bytes]:
    """One typed message (type, body) of at most ``max_len`` bytes from a byte source."""
    header = await read_exact(5)
    kind, length = struct.unpack("!ci", header)
    if length < 4 or length > max_len:
        raise protocol_error(f"invalid message length {length}")
    return kind, await read_exact(length - 4)
