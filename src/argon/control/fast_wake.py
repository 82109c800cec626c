"""Waking a pooled endpoint: PgBouncer starts beside Postgres, not after it.

PgBouncer opens server connections only when a client needs one, so it can be started
as soon as the compute's socket address (its port) is chosen, before the postmaster is
even spawned; the two starts overlap and a pooled wake costs about what a direct one
does.  Nothing here changes what runs, only when: a PgBouncer that failed to start is
started again by the pooled connection that follows (``EndpointRuntime._ensure_pooler``).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)


class InParallel(Generic[T]):
    """Run ``job`` in a thread from now until ``wait()``; its failure is not raised
    (the caller's own path retries or reports it) but kept in ``error`` and, unless
    ``log_failure`` is False, logged.  ``result``: what it returned, None until it
    did (or when it failed)."""

    def __init__(self, name: str, job: Callable[[], T], *, enabled: bool = True,
                 log_failure: bool = True) -> None:
        self.name = name
        self._job = job
        self._log_failure = log_failure
        self.result: T | None = None
        self.error: Exception | None = None
        self._thread: threading.Thread | None = None
        if enabled:
            context = contextvars.copy_context()   # keeps the request id in the log
            self._thread = threading.Thread(target=context.run, args=(self._run,),
                                            name=f"argon-{name}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._job()
        except Exception as exc:  # noqa: BLE001 - retried or reported by the caller
            self.error = exc
            if self._log_failure:
                logger.warning("%s: early start failed (retried on use): %s", self.name, exc)

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
