"""The pure parts of re-identifying a cloned template: CRC-32C and finding pg_control's CRC."""

from __future__ import annotations

import struct

import pytest

from argon.control.project_template import TemplateError, _crc_offset, crc32c


def test_crc32c_matches_the_castagnoli_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


def test_the_crc_is_found_where_it_covers_everything_before_it() -> None:
    body = bytes(i % 251 for i in range(296))
    data = bytearray(body + struct.pack("@I", crc32c(body)) + bytes(8192 - 300))
    assert _crc_offset(data) == 296


def test_a_control_file_without_a_valid_crc_is_refused() -> None:
    with pytest.raises(TemplateError, match="no valid CRC"):
        _crc_offset(bytearray(512))
