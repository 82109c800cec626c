"""Cancel keys: clients get the proxy's own (pid, key); a CancelRequest arriving on any
listener is mapped back to the real backend's key and sent to the right compute."""

from __future__ import annotations

import asyncio
import logging
import os
import struct

from argon.proxy import pq
from argon.proxy.backend import ComputeAddress
from argon.proxy.dial import open_compute_stream

logger = logging.getLogger(__name__)

CANCEL_TIMEOUT = 5.0


class CancelMap:
    def __init__(self) -> None:
        self._keys: dict[tuple[int, bytes], tuple[ComputeAddress, int, bytes]] = {}

    def register(self, address: ComputeAddress, pid: int, key: bytes) -> tuple[int, bytes]:
        """Hand out a fresh proxy key for the backend (pid, key) at ``address``."""
        while True:
            raw = os.urandom(8)
            proxy_pid = struct.unpack("!i", raw[:4])[0] & 0x7FFFFFFF or 1
            proxy_key = raw[4:]
            if (proxy_pid, proxy_key) not in self._keys:
                self._keys[(proxy_pid, proxy_key)] = (address, pid, key)
                return proxy_pid, proxy_key

    def unregister(self, proxy_pid: int, proxy_key: bytes) -> None:
        self._keys.pop((proxy_pid, proxy_key), None)

    def __len__(self) -> int:
        return len(self._keys)

    async def cancel(self, proxy_pid: int, proxy_key: bytes) -> bool:
        """Forward a cancel; False when the key is unknown (as Postgres, say nothing)."""
        target = self._keys.get((proxy_pid, proxy_key))
        if target is None:
            logger.info("cancel request with an unknown key ignored")
            return False
        address, pid, key = target
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT):
                reader, writer = await open_compute_stream(address)
                writer.write(pq.cancel_request(pid, key))
                await writer.drain()
                await reader.read()   # Postgres closes once it has signalled the backend
                writer.close()
        except (OSError, TimeoutError) as e:
            logger.warning("could not forward a cancel request to %s: %s", address, e)
            return False
        return True
