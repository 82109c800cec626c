"""The proxy's own bounded thread pools for blocking work.

Wakes can hold a thread for minutes (a cold start replaying WAL); role lookups and
password hashing take milliseconds.  Each gets its own pool, and neither shares
asyncio's default executor with the API, so a burst of one kind cannot starve the
others.  Created on first use: nothing starts at import.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

WAKE_THREADS = 8     # distinct endpoints starting at once; more wait their turn
QUICK_THREADS = 4    # metadata lookups, SCRAM password checks


class ProxyWorkers:
    def __init__(self, wake_threads: int = WAKE_THREADS,
                 quick_threads: int = QUICK_THREADS) -> None:
        self.wakes = ThreadPoolExecutor(wake_threads, thread_name_prefix="argon-proxy-wake")
        self.quick = ThreadPoolExecutor(quick_threads, thread_name_prefix="argon-proxy")

    async def run_wake(self, fn: Callable[..., T], *args: object) -> T:
        return await _in_thread(self.wakes, fn, *args)

    async def run_quick(self, fn: Callable[..., T], *args: object) -> T:
        return await _in_thread(self.quick, fn, *args)

    def shutdown(self) -> None:
        self.wakes.shutdown(wait=False, cancel_futures=True)
        self.quick.shutdown(wait=False, cancel_futures=True)


async def _in_thread(pool: ThreadPoolExecutor, fn: Callable[..., T], *args: object) -> T:
    # with the caller's context (as asyncio.to_thread): what a wake logs in its thread
    # carries the session's id
    run = functools.partial(contextvars.copy_context().run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(pool, run)


_shared: ProxyWorkers | None = None
_shared_lock = threading.Lock()


def shared_workers() -> ProxyWorkers:
    """The process's proxy pools (the proxy and its control-plane backend share them)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ProxyWorkers()
        return _shared
