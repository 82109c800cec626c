"""Whether a session's login can serve the next client of its role.

A pooled client that opens a connection per request costs PgBouncer and the proxy a
whole second login (connect, startup, two SCRAM round trips) after the client's own.  In
transaction mode the state PgBouncer keeps for one of its clients is small: the startup
parameters, the values of the parameters it reports (``ParameterStatus``) and the named
prepared statements it tracks.  A session that changed none of them, has nothing in
flight and ended with a Terminate at an idle ReadyForQuery leaves a login that is, to
PgBouncer and to Postgres, the same as a fresh one of that role with those startup
parameters.  The proxy then keeps it (``argon.proxy.spares``, keyed by the role's
StoredKey and the startup parameters) instead of closing it.

``LoginWatch`` reads the message headers of both directions while relaying (no copy,
bodies are skipped by length).  Anything it does not vouch for ends the watch and the
login is closed as before: a named ``Parse``, any ``ParameterStatus`` or notification
from the server, a Terminate with a query still unanswered, more than ``WATCH_BYTES``
relayed (a long session pays the parsing only up to there).

On a direct door (``resettable``) the login is a Postgres backend, and the proxy resets it
with ``DISCARD ALL`` before keeping it (``argon.proxy.backend_reset``), as PgBouncer's
session mode does: named statements, parameters and notifications are then allowed, and
only a session that ended cleanly (idle, nothing unanswered) is kept.  In both modes an
extended-protocol batch the client never closed with Sync keeps the login from reuse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

TERMINATE = b"X\x00\x00\x00\x04"
# Past this many relayed bytes a session is not watched any more (and not reused).
WATCH_BYTES = 256 * 1024
# Client messages each answered by exactly one ReadyForQuery.
_ANSWERED = frozenset(b"QSF")
# Extended-protocol messages: state on the server until a Sync closes their batch.
_BATCHED = frozenset(b"PBEDCH")
# Server messages that leave state with this client: changed reported parameters,
# notifications of a LISTEN.
_STATEFUL_SERVER = frozenset(b"SA")


class _Headers:
    """Walks message boundaries across chunks; yields (type, first body byte, start)."""

    __slots__ = ("skip", "head")

    def __init__(self) -> None:
        self.skip = 0          # bytes of the current message still to come
        self.head = b""        # a header split across chunks

    def walk(self, data: bytes, on_message: Callable[[int, int, int], bool]) -> bool:
        """Call ``on_message(kind, first_byte or -1, start)`` per message that starts in
        ``data``; False as soon as it returns False or the stream cannot be followed."""
        n = len(data)
        pos = self.skip
        if pos >= n:
            self.skip = pos - n
            return True
        self.skip = 0
        if self.head:
            if pos:      # cannot happen: a stashed header means no body was being skipped
                return False
            data = self.head + data
            n = len(data)
            self.head = b""
        while pos < n:
            if n - pos < 6:
                if n - pos < 5 or data[pos + 1:pos + 5] != b"\x00\x00\x00\x04":
                    self.head = data[pos:]
                    return True
            kind = data[pos]
            length = int.from_bytes(data[pos + 1:pos + 5], "big")
            if length < 4:
                return False
            first = data[pos + 5] if length > 4 else -1
            if not on_message(kind, first, pos):
                return False
            pos += 1 + length
        self.skip = pos - n
        return True


class LoginWatch:
    """One pooled session's watch; ``released`` resolves when its login can be kept."""

    def __init__(self, *, resettable: bool = False) -> None:
        self.released: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.resettable = resettable   # the login is reset before reuse (a direct door)
        self.watching = True
        self._open_batch = False       # extended-protocol messages not yet closed by Sync
        self._unanswered = 0
        self._idle = True
        self._bytes = 0
        self._client = _Headers()
        self._server = _Headers()
        self._terminate_at = -1
        self.on_stop: Callable[[], None] | None = None   # set by the session: unhook both
        # set by the session: take the login off the relay at once, before the client's
        # close (which may be in the same read) reaches it
        self.on_release: Callable[[], None] | None = None

    def stop(self) -> None:
        """Not reusable: relay the rest of the session untouched."""
        if self.watching:
            self.watching = False
            if self.on_stop is not None:
                self.on_stop()

    def _count(self, data: bytes) -> bool:
        self._bytes += len(data)
        if self._bytes > WATCH_BYTES:
            self.stop()
            return False
        return True

    # -- client -> PgBouncer ---------------------------------------------------------------
    def from_client(self, data: bytes) -> bytes:
        """The bytes to forward; a clean Terminate is kept back and releases the login."""
        if not self.watching or not self._count(data):
            return data
        self._terminate_at = -1
        if not self._client.walk(data, self._client_message):
            self.stop()
            return data
        at = self._terminate_at
        if at < 0:
            return data
        if (at + len(TERMINATE) == len(data) and self._unanswered == 0 and self._idle
                and not self._open_batch and data.endswith(TERMINATE)):
            self.watching = False
            if self.on_release is not None:
                self.on_release()
            if not self.released.done():
                self.released.set_result(None)
            return data[:at]
        self.stop()
        return data

    def _client_message(self, kind: int, first: int, start: int) -> bool:
        if kind in _ANSWERED:
            self._unanswered += 1
            self._idle = False
            self._open_batch = False
        elif kind == 0x58:            # 'X' Terminate
            self._terminate_at = start
        elif kind in _BATCHED:
            self._open_batch = True
            # 'P' Parse: only the unnamed statement is stateless, unless the login is reset
            return kind != 0x50 or first == 0 or self.resettable
        return True

    # -- PgBouncer -> client ---------------------------------------------------------------
    def from_server(self, data: bytes) -> bytes:
        if self.watching and self._count(data) and not self._server.walk(
                data, self._server_message):
            self.stop()
        return data

    def _server_message(self, kind: int, first: int, start: int) -> bool:
        if kind == 0x5A:              # 'Z' ReadyForQuery, status I(dle) / T / E
            self._unanswered -= 1
            self._idle = self._unanswered == 0 and first == 0x49
            return self._unanswered >= 0
        return self.resettable or kind not in _STATEFUL_SERVER
