"""The IP allow-list rule (argon.control.ip_allow): Neon's three entry forms, its
flags, and the cache's invalidation, without sockets or metadata."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from argon.control import ip_allow
from argon.control.ip_allow import (IpAllowCache, address_allowed, parse_pattern,
                                    patterns_for, validate_allowed_ips)
from argon.errors import InvalidInput


def _allowed(peer: str, ips: list[str], **flags: bool) -> bool:
    protected = flags.pop("protected", False)
    default = flags.pop("default", True)
    return address_allowed(peer, patterns_for({"ips": ips, **flags}, protected=protected,
                                              default=default))


@pytest.mark.parametrize("peer, ips, expected", [
    ("127.0.0.1", [], True),
    ("127.0.0.1", ["127.0.0.1"], True),
    ("127.0.0.1", ["8.8.8.8"], False),
    ("127.0.0.1", ["10.0.0.0/8"], False),
    ("10.200.3.4", ["10.0.0.0/8"], True),
    ("127.0.0.1", ["127.0.0.1/31"], True),       # host bits set, as ipnet parses it
    ("127.0.0.1", ["0.0.0.0-200.0.1.2"], True),
    ("127.0.0.1", ["127.0.0.1-127.0.0.1"], True),
    ("127.0.0.1", ["127.0.0.2-128.0.0.0"], False),
    ("127.0.0.1", ["127.0.0.1-127.0.0.0"], False),  # a reversed range matches nothing
    ("127.0.0.1", ["88.8.8", "127.0.0.1"], True),   # a broken entry is skipped
    ("127.0.0.1", ["88.8.8"], False),               # ...but the list still binds
    ("::1", ["::1"], True),
    ("::1", ["127.0.0.1"], False),
    ("::ffff:10.1.1.1", ["10.0.0.0/8"], True),      # IPv4 on a dual-stack socket
    ("2001:db8::5", ["2001:db8::/32"], True),
    ("", ["127.0.0.1"], False),                     # no address: a list refuses
])
def test_address_against_list(peer: str, ips: list[str], expected: bool) -> None:
    assert _allowed(peer, ips) is expected


def test_protected_branches_only_binds_protected_branches() -> None:
    ips = ["10.0.0.0/8"]
    assert _allowed("127.0.0.1", ips, protected_branches_only=True, protected=False)
    assert not _allowed("127.0.0.1", ips, protected_branches_only=True, protected=True)
    assert not _allowed("127.0.0.1", ips, protected_branches_only=False, protected=False)


def test_primary_branch_only_binds_the_default_branch() -> None:
    ips = ["10.0.0.0/8"]
    assert _allowed("127.0.0.1", ips, primary_branch_only=True, default=False)
    assert not _allowed("127.0.0.1", ips, primary_branch_only=True, default=True)


@pytest.mark.parametrize("entry", ["300.0.1.2", "30.1.2", "127.0.0.1/33",
                                   "127.0.0.1-127.0.3", "1234.0.0.1-127.0.3.0",
                                   "10.0.0.1-::1", "localhost", "", 7, None])
def test_bad_entries_name_themselves(entry: Any) -> None:
    with pytest.raises(InvalidInput, match=repr(entry).replace("[", r"\[")):
        parse_pattern(entry)
    with pytest.raises(InvalidInput):
        validate_allowed_ips({"ips": ["10.0.0.1", entry]})


@pytest.mark.parametrize("value, fragment", [
    ("10.0.0.1", "must be an object"),
    ({"ips": "10.0.0.1"}, "must be an array"),
    ({"ips": [], "protected_branches_only": 1}, "must be a boolean"),
    ({"ips": [], "other": True}, "unknown field 'other'"),
    ({"ips": ["10.0.0.1"] * (ip_allow.MAX_ENTRIES + 1)}, "more than"),
])
def test_bad_shapes(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        validate_allowed_ips(value)


def test_good_shapes_pass_unchanged() -> None:
    value = {"ips": ["10.0.0.0/8", " 192.168.1.1 ", "1.1.1.1-1.1.1.9", "2001:db8::/32"],
             "protected_branches_only": False}
    assert validate_allowed_ips(value) is value


class _FakeTx:
    """A ``ctx.tx`` stand-in counting lookups; ``load_patterns`` is swapped for it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.queries = 0
        self.ips = ["10.0.0.0/8"]
        monkeypatch.setattr(ip_allow, "load_patterns", self._load)

    def _load(self, conn: Any, endpoint_id: str) -> ip_allow.Restriction:
        self.queries += 1
        return patterns_for({"ips": self.ips}, protected=False, default=True)

    @contextmanager
    def __call__(self) -> Iterator[None]:
        yield None


def test_cache_serves_from_memory_until_invalidated(monkeypatch: pytest.MonkeyPatch) -> None:
    tx = _FakeTx(monkeypatch)
    cache = IpAllowCache()
    assert cache.cached("ep-a") is None
    cache.load(tx, "ep-a")
    rule = cache.cached("ep-a")
    assert rule is not None and not address_allowed("127.0.0.1", rule.patterns)
    assert tx.queries == 1
    tx.ips = ["127.0.0.1"]
    cache.invalidate()
    assert cache.cached("ep-a") is None
    assert address_allowed("127.0.0.1", cache.load(tx, "ep-a"))
    assert tx.queries == 2


def test_cache_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    tx = _FakeTx(monkeypatch)
    cache = IpAllowCache(clock=lambda: now[0])
    cache.load(tx, "ep-a")
    now[0] += ip_allow.CACHE_TTL + 1
    assert cache.cached("ep-a") is None
