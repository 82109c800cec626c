"""Log sequence numbers as a value type (``0/16B3748`` <-> int)."""

from __future__ import annotations

import re

from argon.errors import InvalidInput

_LSN_RE = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


class Lsn(int):
    """A Postgres LSN; ``str()`` gives Postgres' ``X/Y`` form."""

    @classmethod
    def parse(cls, text: str) -> Lsn:
        m = _LSN_RE.match(text.strip())
        if not m:
            raise InvalidInput(f"invalid LSN {text!r}: expected the form 0/16B3748")
        return cls((int(m.group(1), 16) << 32) | int(m.group(2), 16))

    def __str__(self) -> str:
        return f"{int(self) >> 32:X}/{int(self) & 0xFFFFFFFF:X}"

    def __repr__(self) -> str:
        return f"Lsn('{self}')"

    def segment_name(self, timeline: int, segment_size: int = 16 * 1024 * 1024) -> str:
        """Name of the WAL segment file holding this LSN on ``timeline``."""
        segno = int(self) // segment_size
        per_id = 0x100000000 // segment_size
        return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"
