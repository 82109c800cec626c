"""Neon's IP allow list: which client addresses may connect to a project's endpoints.

A project's ``settings.allowed_ips`` is ``{"ips": [...], "protected_branches_only": bool}``
(and Neon's deprecated ``primary_branch_only``).  An entry is what Neon's proxy parses:
one address (``203.0.113.7``, ``2001:db8::1``), a subnet (``10.0.0.0/8``; host bits may be
set, as ipnet allows) or an inclusive range ``a-b``.  An empty list allows every address.
With ``protected_branches_only`` the list applies only to endpoints of protected branches
(with ``primary_branch_only``, only to the default branch's).  The proxy asks before it
authenticates a client, on the wire protocol, ``/sql`` and the WebSocket alike.

One deliberate difference: a range whose ends are of different families
(``10.0.0.1-::1``) is refused here; Neon's parser takes it and then compares the two
families in a way no one means.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from argon.errors import InvalidInput
from argon.meta import tables as t

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Pattern = Network | tuple[Address, Address]

KEYS = ("ips", "protected_branches_only", "primary_branch_only")
MAX_ENTRIES = 1000
CACHE_TTL = 30.0   # a safety bound; project and branch updates invalidate at once


def parse_pattern(entry: str) -> Pattern:
    """One allow-list entry (InvalidInput naming it when it is none of the three forms)."""
    text = entry.strip() if isinstance(entry, str) else ""
    try:
        if "/" in text:
            return ipaddress.ip_network(text, strict=False)
        if "-" in text:
            first, _, last = text.partition("-")
            start, end = ipaddress.ip_address(first.strip()), ipaddress.ip_address(last.strip())
            if start.version != end.version:
                raise ValueError("mixed families")
            return (start, end)
        return ipaddress.ip_network(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidInput(
            f"settings.allowed_ips.ips: {entry!r} is not an IP address, a CIDR subnet "
            "(10.0.0.0/8) or a range (10.0.0.1-10.0.0.9)") from None


def validate_allowed_ips(value: Any) -> dict[str, Any]:
    """``settings.allowed_ips`` as a project create or update gives it."""
    if not isinstance(value, dict):
        raise InvalidInput('settings.allowed_ips must be an object {"ips": [...], '
                           '"protected_branches_only": false}')
    for key in value:
        if key not in KEYS:
            raise InvalidInput(f"settings.allowed_ips: unknown field {key!r}; expected "
                               f"{', '.join(KEYS)}")
    ips = value.get("ips", [])
    if not isinstance(ips, list):
        raise InvalidInput("settings.allowed_ips.ips must be an array of strings")
    if len(ips) > MAX_ENTRIES:
        raise InvalidInput(f"settings.allowed_ips.ips has more than {MAX_ENTRIES} entries")
    for entry in ips:
        parse_pattern(entry)
    for flag in ("protected_branches_only", "primary_branch_only"):
        if value.get(flag) is not None and not isinstance(value[flag], bool):
            raise InvalidInput(f"settings.allowed_ips.{flag} must be a boolean")
    return value


def validate_settings(settings: Any) -> Any:
    """Check the allow list inside project ``settings`` (other fields pass through)."""
    if isinstance(settings, dict) and settings.get("allowed_ips") is not None:
        validate_allowed_ips(settings["allowed_ips"])
    return settings


# None: no list binds the endpoint, every address may connect; a tuple: only those.
Restriction = tuple[Pattern, ...] | None


def patterns_for(allowed_ips: Any, *, protected: bool, default: bool) -> Restriction:
    """The patterns that bind an endpoint of a branch.  Entries that do not parse never
    match (a list of only such entries refuses everyone), as in Neon's proxy."""
    if not isinstance(allowed_ips, dict) or not allowed_ips.get("ips"):
        return None
    if allowed_ips.get("protected_branches_only") and not protected:
        return None
    if allowed_ips.get("primary_branch_only") and not default:
        return None
    out: list[Pattern] = []
    for entry in allowed_ips["ips"]:
        try:
            out.append(parse_pattern(entry))
        except InvalidInput:
            continue
    return tuple(out)


def address_allowed(peer: str, patterns: Sequence[Pattern] | None) -> bool:
    """Whether a client address passes the patterns (None: no list, yes)."""
    if patterns is None:
        return True
    try:
        addr: Address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False   # not an IP peer (e.g. a unix socket): a list means refuse
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped   # an IPv4 client on a dual-stack socket
    for pattern in patterns:
        if isinstance(pattern, tuple):
            start, end = pattern
            if start.version == addr.version and start <= addr <= end:  # type: ignore[operator]
                return True
        elif addr in pattern:
            return True
    return False


@dataclass(frozen=True)
class _Rule:
    patterns: Restriction
    loaded_at: float


def load_patterns(conn: Connection, endpoint_id: str) -> Restriction:
    """The endpoint's patterns from its project's settings and its branch (none for an
    unknown endpoint: the caller's own lookup reports that one)."""
    row = conn.execute(
        select(t.projects.c.settings, t.branches.c.protected, t.branches.c.is_default)
        .select_from(t.endpoints.join(t.branches, t.endpoints.c.branch_id == t.branches.c.id)
                     .join(t.projects, t.endpoints.c.project_id == t.projects.c.id))
        .where(t.endpoints.c.id == endpoint_id)).first()
    if row is None:
        return None
    settings = row.settings if isinstance(row.settings, dict) else {}
    return patterns_for(settings.get("allowed_ips"), protected=bool(row.protected),
                        default=bool(row.is_default))


class IpAllowCache:
    """Each endpoint's patterns, held in memory so a connection to a running compute
    costs no metadata query; any project or branch update drops them all."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rules: dict[str, _Rule] = {}
        self._generation = 0

    def cached(self, endpoint_id: str) -> _Rule | None:
        rule = self._rules.get(endpoint_id)
        if rule is None or self._clock() - rule.loaded_at > CACHE_TTL:
            return None
        return rule

    def load(self, tx: Callable[[], Any], endpoint_id: str) -> Restriction:
        """Read the endpoint's patterns (blocking) and remember them unless an update
        came in meanwhile."""
        generation = self._generation
        with tx() as conn:
            patterns = load_patterns(conn, endpoint_id)
        with self._lock:
            if generation == self._generation:
                self._rules[endpoint_id] = _Rule(patterns, self._clock())
        return patterns

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._rules.clear()
