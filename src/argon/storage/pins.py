"""Timeline pins: history a running operation reads (a restore, a branch at a past
point) that GC must keep while the operation runs.

Storage asks a ``PinRegistry`` and does not care who keeps it: ``LocalPins`` (this
process's memory) is the default; control injects one backed by its coordinator, so a
pin taken by one Argon process keeps another's GC away (``control/pins.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class PinRegistry(Protocol):
    def pin(self, *timeline_ids: str) -> AbstractContextManager[None]:
        """Held: these timelines' history is not collected."""
        ...

    def pinned(self, among: Iterable[str]) -> set[str]:
        """Those of ``among`` that someone pins now."""
        ...


class LocalPins:
    """Pins counted in this process (one Argon per home)."""

    def __init__(self) -> None:
        self._pins: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def pin(self, *timeline_ids: str) -> Iterator[None]:
        with self._lock:
            for tl in timeline_ids:
                self._pins[tl] = self._pins.get(tl, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                for tl in timeline_ids:
                    self._pins[tl] -= 1
                    if not self._pins[tl]:
                        del self._pins[tl]

    def pinned(self, among: Iterable[str]) -> set[str]:
        with self._lock:
            return {tl for tl in among if tl in self._pins}
