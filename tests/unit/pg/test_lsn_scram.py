from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from argon.errors import InvalidInput
from argon.pg import Lsn
from argon.pg.scram import ScramVerifier, make_verifier


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_lsn_round_trips(value: int) -> None:
    assert Lsn.parse(str(Lsn(value))) == value


@pytest.mark.parametrize("text", ["", "0", "0/", "/1", "G/1", "0/123456789", "1/2/3"])
def test_bad_lsn_is_rejected(text: str) -> None:
    with pytest.raises(InvalidInput, match="LSN"):
        Lsn.parse(text)


def test_segment_name() -> None:
    assert Lsn.parse("0/16B3748").segment_name(1) == "000000010000000000000001"
    assert Lsn.parse("1/0").segment_name(2) == "000000020000000100000000"


def test_scram_verifier_checks_passwords() -> None:
    v = ScramVerifier.parse(str(make_verifier("s3cret")))
    assert v.verify_password("s3cret") and not v.verify_password("S3cret")
    with pytest.raises(InvalidInput):
        ScramVerifier.parse("md5abcdef")
