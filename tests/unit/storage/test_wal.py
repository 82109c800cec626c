"""WAL naming, backup_label and pg_control parsing (pure functions)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from argon.errors import InvalidInput
from argon.pg import Lsn
from argon.storage.wal import (
    DbState,
    parse_backup_label,
    parse_control_head,
    segment_name,
    segment_number,
    segments_between,
)

SEG = 16 * 1024 * 1024


@given(st.integers(1, 0xFFFF), st.integers(0, 2**32), st.sampled_from([SEG, 1 << 20, 1 << 30]))
def test_segment_name_round_trip(tli: int, segno: int, size: int) -> None:
    name = segment_name(tli, segno, size)
    assert segment_number(name, size) == (tli, segno)


@given(st.integers(0, 2**48))
def test_segment_name_agrees_with_lsn(lsn: int) -> None:
    assert segment_name(3, lsn // SEG) == Lsn(lsn).segment_name(3)


def test_segments_between_uses_the_previous_segment_for_an_end_on_a_boundary() -> None:
    start = Lsn.parse("0/2000028")
    assert segments_between(1, start, Lsn.parse("0/3000000")) == ["000000010000000000000002"]
    assert segments_between(1, start, Lsn.parse("0/3000028")) == [
        "000000010000000000000002", "000000010000000000000003"]
    assert segments_between(2, Lsn.parse("1/FF000028"), Lsn.parse("2/01000100")) == [
        "0000000200000001000000FF", "000000020000000200000000", "000000020000000200000001"]
    with pytest.raises(InvalidInput):
        segments_between(1, Lsn(100), Lsn(50))


def test_parse_backup_label() -> None:
    text = ("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
            "CHECKPOINT LOCATION: 0/2000080\nBACKUP METHOD: streamed\n"
            "BACKUP FROM: primary\nSTART TIME: 2026-01-01 00:00:00 UTC\n"
            "LABEL: argon branch x\nSTART TIMELINE: 3\n")
    label = parse_backup_label(text)
    assert label.start_lsn == Lsn.parse("0/2000028")
    assert label.start_segment == "000000010000000000000002"
    assert label.start_timeline == 3
    with pytest.raises(InvalidInput):
        parse_backup_label("LABEL: nothing\n")


def test_parse_control_head() -> None:
    data = struct.pack("@QIIiqQQI", 7654321, 1800, 202501011, 1, 0,
                       0x2000028, 0x2000028, 4) + b"\0" * 200
    facts = parse_control_head(data)
    assert facts.state is DbState.SHUTDOWNED
    assert facts.checkpoint == Lsn.parse("0/2000028") and facts.timeline == 4
    with pytest.raises(InvalidInput):
        parse_control_head(data[:10])
    with pytest.raises(InvalidInput):
        parse_control_head(struct.pack("@QIIiqQQI", 1, 42, 1, 1, 0, 0, 0, 1))
