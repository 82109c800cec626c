"""Git mode's ``git checkout`` follower: when HEAD names another branch, its database
branch is made ready at once (not at the next connection), and the sessions still open on
the previous one are ended by Postgres itself (``pg_terminate_backend`` as the same role),
so clients see a proper ``57P01`` and connection pools reconnect to the new branch."""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

from argon.errors import ArgonError
from argon.local.branches import BranchSelector, Upstream
from argon.local.channel import Channel
from argon.local.git_head import current_branch
from argon.local.wire import Startup, UpstreamRefused, open_upstream
from argon.proxy import pq
from argon.proxy.errors import ProxyError

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class OpenSession:
    upstream: Upstream
    database: str
    backend_pid: int


class Sessions:
    """The door's open wire sessions, by the database branch they are on."""

    def __init__(self) -> None:
        self._open: dict[int, OpenSession] = {}

    def add(self, key: int, session: OpenSession) -> None:
        self._open[key] = session

    def remove(self, key: int) -> None:
        self._open.pop(key, None)

    def not_on(self, branch_id: str) -> list[OpenSession]:
        return [s for s in self._open.values() if s.upstream.branch_id != branch_id]


async def backend_pid(upstream: Channel) -> int | None:
    """The Postgres backend's process id, asked before the client gets the session (the
    proxy's BackendKeyData carries its own cancel key, not the pid)."""
    upstream.write(pq.message(b"Q", b"SELECT pg_backend_pid()\0"))
    await upstream.drain()
    pid: int | None = None
    while True:
        kind, body = await pq.read_message(upstream.read_exact, 1 << 20)
        if kind == b"D" and len(body) > 6:
            (n,) = struct.unpack_from("!i", body, 2)
            pid = int(body[6:6 + n])
        elif kind == b"Z":
            return pid


async def terminate(session: OpenSession, ca_file: Path | None) -> None:
    try:
        ch, _ = await open_upstream(session.upstream, Startup({
            "database": session.database, "application_name": "argon local"}), ca_file)
    except (ProxyError, UpstreamRefused) as e:
        logger.info("could not end a session on %s: %s", session.upstream.branch_name, e)
        return
    try:
        ch.write(pq.message(b"Q", f"SELECT pg_terminate_backend({session.backend_pid})"
                            .encode() + b"\0"))
        await ch.drain()
        while (await pq.read_message(ch.read_exact, 1 << 20))[0] != b"Z":
            pass
        ch.write(pq.message(b"X"))
        await ch.drain()
    except (OSError, asyncio.IncompleteReadError) as e:
        logger.info("ending a session on %s: %s", session.upstream.branch_name, e)
    finally:
        ch.close()


async def follow_head(head: Path, selector: BranchSelector, sessions: Sessions,
                      ca_file: Path | None) -> None:
    """Runs for the door's life in git mode."""
    last: str | None = None
    while True:
        try:
            name = current_branch(head)
            if name != last:
                up = await selector.target()
                if last is not None:
                    logger.warning("git HEAD is now %s: new connections go to database "
                                   "branch %s", name, up.branch_id)
                    print(f"argon local: git branch {name}: database branch "
                          f"{up.branch_name} ({up.branch_id})", flush=True)
                    await asyncio.gather(*(terminate(s, ca_file)
                                           for s in sessions.not_on(up.branch_id)))
                last = name
        except ArgonError as e:           # detached HEAD, Argon away: try again later
            logger.info("git follower: %s", e.message)
        await asyncio.sleep(POLL_SECONDS)
