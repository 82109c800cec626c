"""The coordinator: per-object locks, claims on running operations, the reconciler's
leadership and shared holds (open proxy sessions, timeline pins), behind one interface
with two implementations.

``LocalCoordinator`` keeps everything in this process (SQLite metadata: one Argon per
home, so process memory is enough).  ``PostgresCoordinator`` adds Postgres advisory
locks held on one dedicated connection, so several Argon processes on one metadata
database exclude each other.  Advisory locks rather than lease rows: they need no table
and no clock, and Postgres drops every lock of a session the moment the session ends, so
a crashed holder (kill -9, a lost host once TCP keepalive notices) frees its objects and
its leadership without anyone waiting for a lease to expire.

Every name is locked twice: a re-entrant thread lock in this process first (advisory
locks are per session, and all of a process's threads share the one session), then the
advisory lock, taken when the first local holder enters and released when the last
leaves.  The server is only ever asked to *try* (``pg_try_advisory_lock``); waits poll
here, so one waiting thread never blocks the shared connection for the others.

Shared holds (``share``/``unshare``/``shared``) are counted here and mirrored as one
*shared* advisory lock per name while the count is above zero (taken at 0 -> 1, dropped
at 1 -> 0).  Sessions do not wait for that: the proxy opens and closes them on its event
loop, so a background syncer applies them a moment later (and takes every hold again
after a lost session comes back); pins wait, so GC elsewhere sees them before the
history is read.  Others see the holds through ``pg_locks``, never by locking, so a
check never gets in a holder's way.  They mean "an open session on this endpoint" (the
suspender keeps the compute) and "a pin on this timeline" (GC keeps its history); a
crashed process's holds go with its session, like its locks.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from sqlalchemy import Engine

from argon.errors import Locked, Unavailable

logger = logging.getLogger(__name__)

LEADER = "argon:reconciler-leader"
# Shared-hold name of an endpoint's open sessions (proxy, SQL runner, imports).
SESSIONS = "sessions:"
# Poll steps while waiting for a lock another process holds (seconds).
POLL_FIRST, POLL_MAX = 0.01, 0.2
# How often the background syncer checks the shared holds at the latest (seconds).
SYNC_EVERY = 1.0


class Coordinator(Protocol):
    """What control asks of a coordinator (``ctx.locks``), whatever backs it."""

    kind: str
    # True when other processes share the metadata (and so the computes' activity)
    shared_across_processes: bool

    def hold(self, *names: str, wait: float = 0.0,
             what: str = "object") -> AbstractContextManager[None]:
        """Hold every name, or raise ``Locked`` (423) if one is taken (after ``wait`` s)."""
        ...

    def wait_for(self, name: str) -> AbstractContextManager[None]:
        """Hold ``name``, waiting as long as it takes."""
        ...

    def claim(self, name: str) -> None: ...

    def release_claim(self, name: str) -> None: ...

    def claimed(self, name: str) -> bool: ...

    def try_lead(self) -> bool: ...

    @property
    def leading(self) -> bool: ...

    def share(self, name: str, wait: bool = True) -> None:
        """Hold ``name`` shared (counted: several holders, several processes).
        ``wait`` False: other processes learn it a moment later, and the caller never
        waits for the metadata database (the proxy's event loop)."""
        ...

    def unshare(self, name: str, wait: bool = True) -> None: ...

    def shared(self, names: Iterable[str], anywhere: bool = True) -> set[str]:
        """Those of ``names`` some holder holds: in this process, and (``anywhere``) in
        any process on the metadata database."""
        ...

    def sessions_opened(self, endpoint_id: str) -> None: ...

    def sessions_closed(self, endpoint_id: str) -> None: ...

    def has_sessions(self, endpoint_id: str, anywhere: bool = True) -> bool: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


class LocalCoordinator:
    """Named re-entrant locks: one per branch / endpoint / project being changed.

    A mutation that finds its object locked by another running operation answers 423,
    as Neon does; internal waits (a wake shared by several clients) block instead.
    Leadership is always this process's; operations are claimed in memory.
    """

    kind = "in-process"
    shared_across_processes = False

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}
        self._claims: set[str] = set()
        self._shares: dict[str, int] = {}    # shared holds of this process, counted

    def _get(self, name: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(name, threading.RLock())

    # -- per-object locks (the call shape every service uses) -----------------------------

    @contextmanager
    def hold(self, *names: str, wait: float = 0.0, what: str = "object") -> Iterator[None]:
        taken: list[str] = []
        deadline = time.monotonic() + wait
        try:
            for name in sorted(set(names)):  # a fixed order: no deadlocks between two holders
                if not self._acquire(name, deadline if wait > 0 else None):
                    raise Locked(f"{what} is locked by a running operation; retry shortly")
                taken.append(name)
            yield
        finally:
            for name in reversed(taken):
                self._release(name)

    @contextmanager
    def wait_for(self, name: str) -> Iterator[None]:
        self._acquire(name, float("inf"))
        try:
            yield
        finally:
            self._release(name)

    def _acquire(self, name: str, deadline: float | None) -> bool:
        """Take ``name``; ``deadline`` None: only if free now; inf: wait as long as it takes."""
        lock = self._get(name)
        if deadline is None:
            return lock.acquire(blocking=False)
        if deadline == float("inf"):
            return lock.acquire()
        return lock.acquire(timeout=max(deadline - time.monotonic(), 0.0))

    def _release(self, name: str) -> None:
        self._get(name).release()

    # -- running operations: a live holder's work is not "interrupted" -------------------

    def claim(self, name: str) -> None:
        with self._guard:
            self._claims.add(name)

    def release_claim(self, name: str) -> None:
        with self._guard:
            self._claims.discard(name)

    def claimed(self, name: str) -> bool:
        """Whether a live process (this one included) is still working on ``name``."""
        with self._guard:
            return name in self._claims

    # -- the reconciler's leadership -----------------------------------------------------

    def try_lead(self) -> bool:
        """Take or keep leadership; True while this process is the leader."""
        return True

    @property
    def leading(self) -> bool:
        return True

    # -- shared holds: open sessions, pins ------------------------------------------------

    def share(self, name: str, wait: bool = True) -> None:
        with self._guard:
            self._shares[name] = self._shares.get(name, 0) + 1

    def unshare(self, name: str, wait: bool = True) -> None:
        with self._guard:
            left = self._shares.get(name, 0) - 1
            if left > 0:
                self._shares[name] = left
            else:
                self._shares.pop(name, None)

    def shared(self, names: Iterable[str], anywhere: bool = True) -> set[str]:
        with self._guard:
            return {n for n in names if n in self._shares}

    # the proxy opens and closes sessions on its event loop: never wait for the server
    def sessions_opened(self, endpoint_id: str) -> None:
        self.share(SESSIONS + endpoint_id, wait=False)

    def sessions_closed(self, endpoint_id: str) -> None:
        self.unshare(SESSIONS + endpoint_id, wait=False)

    def has_sessions(self, endpoint_id: str, anywhere: bool = True) -> bool:
        """Sessions open on the endpoint: here, and (``anywhere``) in any process."""
        return bool(self.shared([SESSIONS + endpoint_id], anywhere=anywhere))

    def describe(self) -> str:
        return "in-process locks, this process leads"

    def close(self) -> None:
        pass


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (advisory locks take a bigint).  Keys are
    per database, so two Argon metadata databases on one server never collide."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big",
                          signed=True)


class PostgresCoordinator(LocalCoordinator):
    """Advisory locks on a dedicated session: shared by every Argon on the database."""

    kind = "postgres"
    shared_across_processes = True

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self._engine = engine
        self._session_lock = threading.Lock()   # one statement at a time on the session
        self._depth: dict[str, int] = {}        # names this session holds, and how deeply
        self._leading = False
        self._conn: Any = None
        self._on_server: set[str] = set()      # shared holds the session has on the server
        self._closing = False
        self._wake = threading.Event()
        self._connect()
        threading.Thread(target=self._syncer, name="argon-coordinator-sync",
                         daemon=True).start()

    def _connect(self) -> None:
        # Out of the pool for good: its locks must live exactly as long as this session.
        raw = self._engine.raw_connection()
        conn = raw.driver_connection
        raw.detach()
        conn.autocommit = True
        self._conn = conn

    def _try(self, name: str) -> bool:
        with self._session_lock:
            if self._depth.get(name, 0) > 0:    # this process holds it (another thread
                self._depth[name] += 1          # of ours passed the local lock first)
                return True
            got = self._query("SELECT pg_try_advisory_lock(%s)", advisory_key(name))
            if got:
                self._depth[name] = 1
            return bool(got)

    def _untake(self, name: str) -> None:
        with self._session_lock:
            depth = self._depth.get(name, 0) - 1
            if depth > 0:
                self._depth[name] = depth
                return
            self._depth.pop(name, None)
            try:
                self._query("SELECT pg_advisory_unlock(%s)", advisory_key(name))
            except Unavailable:
                pass   # the session is gone, and its locks with it

    def _query(self, sql: str, *args: object) -> object:
        """One statement on the dedicated session (the caller holds ``_session_lock``)."""
        return self._statement(lambda: self._conn.execute(sql, args).fetchone()[0])

    def _statement(self, run: Any) -> Any:
        """``run()`` on the dedicated session, reconnecting first if it was closed; a
        broken session raises ``Unavailable`` (the caller holds ``_session_lock``)."""
        try:
            if self._conn.closed:
                self._reconnect()
            return run()
        except Exception as exc:  # noqa: BLE001 - psycopg's errors: the session broke
            self._lost(exc)
            raise Unavailable("the metadata database's lock session was lost; "
                              "retry shortly") from None

    def _lost(self, exc: BaseException) -> None:
        """The session died: every advisory lock and the leadership went with it."""
        if self._depth or self._leading:
            logger.warning("coordinator: the lock session to the metadata database broke "
                           "(%s); this process no longer holds its locks or leadership",
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        self._depth.clear()
        self._on_server.clear()
        self._leading = False
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001 - already broken
            pass

    def _reconnect(self) -> None:
        # shared holds come back through ``_sync`` (exclusive locks and leadership do
        # not: their holders learn that they lost them)
        self._connect()

    # -- shared holds: a shared advisory lock while this process's count is above zero ---

    def share(self, name: str, wait: bool = True) -> None:
        super().share(name)
        self._synced(wait)

    def unshare(self, name: str, wait: bool = True) -> None:
        super().unshare(name)
        self._synced(wait)

    def _synced(self, wait: bool) -> None:
        if not wait:
            self._wake.set()
            return
        try:
            self._sync()
        except Unavailable as exc:   # counted anyway: the syncer takes it again
            logger.warning("coordinator: shared holds not synced: %s", exc.message)

    def _sync(self) -> None:
        """Make the session's shared advisory locks match the counts: one lock per name
        counted above zero, none for the others."""
        with self._session_lock:
            with self._guard:
                want = set(self._shares)
            for name in sorted(want - self._on_server):
                if not self._query("SELECT pg_try_advisory_lock_shared(%s)",
                                   advisory_key(name)):
                    # nobody takes these names exclusively (checks read pg_locks)
                    logger.warning("coordinator: %s is locked exclusively; not shared "
                                   "with other processes yet", name)
                    continue
                self._on_server.add(name)
            for name in sorted(self._on_server - want):
                self._on_server.discard(name)
                self._query("SELECT pg_advisory_unlock_shared(%s)", advisory_key(name))

    def _syncer(self) -> None:
        """Background: applies holds taken without waiting, and takes every hold again
        after the session was lost and came back."""
        while not self._closing:
            self._wake.wait(SYNC_EVERY)
            self._wake.clear()
            if self._closing:
                return
            with self._guard:
                want = set(self._shares)
            if want != self._on_server:
                try:
                    self._sync()
                except Unavailable:
                    pass   # retried at the next round
                except Exception:  # noqa: BLE001 - the syncer must outlive anything
                    logger.exception("coordinator: syncing shared holds failed")

    def shared(self, names: Iterable[str], anywhere: bool = True) -> set[str]:
        wanted = set(names)
        held = super().shared(wanted)
        rest = {advisory_key(n): n for n in wanted - held}
        if not anywhere or not rest:
            return held
        with self._session_lock:
            try:
                # pg_locks splits a bigint key into classid (high) and objid (low)
                # halves; the shift wraps, giving back the signed key.  Other sessions
                # only: this process's own holds are its counts.
                rows = self._statement(lambda: self._conn.execute(
                    "SELECT DISTINCT (l.classid::bigint << 32) | l.objid::bigint"
                    " FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                    " WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted"
                    " AND d.datname = current_database() AND l.pid <> pg_backend_pid()"
                    " AND (l.classid::bigint << 32) | l.objid::bigint = ANY(%s)",
                    (list(rest),)).fetchall())
            except Unavailable:
                return held | set(rest.values())   # unknown: assume held (nothing is lost)
        return held | {rest[r[0]] for r in rows}

    def _acquire(self, name: str, deadline: float | None) -> bool:
        if not super()._acquire(name, deadline):
            return False
        step = POLL_FIRST
        try:
            while not self._try(name):
                if deadline is None or time.monotonic() >= deadline:
                    super()._release(name)
                    return False
                time.sleep(step)
                step = min(step * 2, POLL_MAX)
        except BaseException:
            super()._release(name)
            raise
        return True

    def _release(self, name: str) -> None:
        try:
            self._untake(name)
        finally:
            super()._release(name)

    def claim(self, name: str) -> None:
        super().claim(name)
        try:
            self._try(name)
        except Unavailable as exc:   # the claim only guards against a wrong repair
            logger.warning("coordinator: could not claim %s: %s", name, exc.message)

    def release_claim(self, name: str) -> None:
        with self._guard:
            mine = name in self._claims
        super().release_claim(name)
        if mine:
            self._untake(name)

    def claimed(self, name: str) -> bool:
        if super().claimed(name):
            return True
        with self._session_lock:
            if self._depth.get(name, 0) > 0:
                return True
            if not self._query("SELECT pg_try_advisory_lock(%s)", advisory_key(name)):
                return True                      # a live session holds it
            self._query("SELECT pg_advisory_unlock(%s)", advisory_key(name))
            return False

    def try_lead(self) -> bool:
        with self._session_lock:
            try:
                if self._leading:
                    self._query("SELECT 1")      # still our session: still the leader
                else:
                    self._leading = bool(self._query("SELECT pg_try_advisory_lock(%s)",
                                                     advisory_key(LEADER)))
            except Unavailable:
                return False
            return self._leading

    @property
    def leading(self) -> bool:
        return self._leading

    def describe(self) -> str:
        role = "this process leads" if self._leading else "another process leads"
        return f"Postgres advisory locks, {role}"

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        with self._session_lock:
            self._depth.clear()
            with self._guard:
                self._shares.clear()
            self._on_server.clear()
            self._leading = False
            try:
                # freed now, not when the server notices the closed socket: a clean stop
                # hands leadership over at once
                self._conn.execute("SELECT pg_advisory_unlock_all()")
            except Exception:  # noqa: BLE001 - a broken session holds nothing any more
                pass
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass


def coordinator_for(engine: Engine) -> Coordinator:
    """The coordinator the metadata database calls for: in-process for SQLite (one Argon
    per home), advisory locks on Postgres (several Argons may share it)."""
    if engine.dialect.name == "postgresql":
        return PostgresCoordinator(engine)
    return LocalCoordinator()
