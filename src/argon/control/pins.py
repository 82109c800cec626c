"""Timeline pins kept by the coordinator: storage's ``PinRegistry`` over shared holds.

With Postgres metadata a pin is a shared advisory lock on the coordinator's session, so
the GC of any Argon process on the database sees it, and a process killed mid-restore
leaves no pin behind (its session, and its locks, end with it).  With SQLite the
coordinator counts in memory, as storage's ``LocalPins`` would.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from argon.control.coordinator import Coordinator

PIN = "pin:"


class CoordinatedPins:
    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    @contextmanager
    def pin(self, *timeline_ids: str) -> Iterator[None]:
        taken: list[str] = []
        try:
            for tl in timeline_ids:
                self.coordinator.share(PIN + tl)
                taken.append(tl)
            yield
        finally:
            for tl in reversed(taken):
                self.coordinator.unshare(PIN + tl)

    def pinned(self, among: Iterable[str]) -> set[str]:
        held = self.coordinator.shared(PIN + tl for tl in among)
        return {name[len(PIN):] for name in held}
