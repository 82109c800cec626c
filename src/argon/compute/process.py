"""Postmaster processes: start, wait until ready, stop, re-adopt after an Argon restart.

The postmaster is spawned directly, not through ``pg_ctl``: ``pg_ctl start`` polls for
readiness every 100 ms and hides the pid behind a shell, and we want a cold start well
under 300 ms and the pid in hand.  It runs in its own session (``start_new_session``)
so that it outlives Argon; after a restart the running computes are found again from a
verified ``postmaster.pid`` (see ``pidfile.py``), never from memory.

Readiness is read from the status line Postgres keeps in ``postmaster.pid`` (``ready``
once it accepts connections, after any recovery and promotion), polled every few
milliseconds, then confirmed with one real connection and ``pg_is_in_recovery()``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psycopg

from argon.compute import admin_auth
from argon.compute.config import atomic_write, render_hba, write_config
from argon.compute.errors import ComputeError, ComputeStartFailed, InvalidComputeSetting
from argon.compute.pidfile import (PIDFILE, STATUS_READY, STATUS_STANDBY, PidFile, alive,
                                   exiting_postmaster, is_postmaster_of, process_in,
                                   process_tree, verified)
from argon.compute.placement import HostLayout, Placement
from argon.compute.sockets import prepare_socket_dir
from argon.compute.spec import (ComputeAddress, ComputeMode, ComputeProcess, ComputeSpec,
                                ComputeState)
from argon.errors import InvalidInput, NotFound, Unavailable
from argon.pg import OsUser
from argon.pg.sessions import ARGON_APPLICATION_NAME, KEPT_LOGIN_MARKER

logger = logging.getLogger(__name__)

# Postgres' shutdown modes and the signal the postmaster expects for each.
STOP_SIGNALS: dict[str, signal.Signals] = {
    "smart": signal.SIGTERM,      # wait for clients to disconnect
    "fast": signal.SIGINT,        # roll back and disconnect clients, clean shutdown
    "immediate": signal.SIGQUIT,  # no shutdown checkpoint; crash recovery at next start
}

APPLICATION_NAME = ARGON_APPLICATION_NAME   # Argon's own sessions; client_sessions() skips them
READY_POLL_SECONDS = 0.005
# postmaster.pid's status line while a start waits: a read of a few bytes, so polled
# often; each poll missed is a millisecond of every wake
STATUS_POLL_SECONDS = 0.001
HBA_RELOAD_SECONDS = 10.0       # a SIGHUP'd postmaster rereads pg_hba.conf within ms
ORPHAN_WAIT_SECONDS = 5.0
# libpq reads no password file from here (a missing path is skipped silently; /dev/null
# would print a warning): Argon's passwords come from the spec, never from ~/.pgpass
NO_PASSFILE = "/nonexistent/.pgpass"

# Postgres' messages that mean "a setting is wrong", not "the server is broken".
_SETTING_ERRORS = ("invalid value for parameter", "unrecognized configuration parameter",
                   "contains errors", "is outside the valid range",
                   "could not create shared memory segment")


def child_env() -> dict[str, str]:
    """The environment of Postgres processes: nothing of Argon's (no secrets, no PG*)."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


class ComputeManager:
    """The local compute provider (``argon.compute.provider.ComputeProvider``): Postgres
    processes on this host, on data directories found through ``layout``."""

    def __init__(self, owner: OsUser, layout: HostLayout, superuser: str = "cloud_admin", *,
                 start_timeout: float = 300.0, stop_timeout: float = 60.0) -> None:
        self.owner = owner
        self.layout = layout
        self.superuser = superuser
        # long enough for a branch replaying a lot of WAL; a crash fails fast anyway
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._children: dict[Path, subprocess.Popen[bytes]] = {}
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- queries -------------------------------------------------------------------------

    def pid(self, spec: ComputeSpec) -> int | None:
        """The running postmaster's pid from a verified postmaster.pid, else None."""
        at = self.layout.place(spec)
        self._reap(at.pgdata)
        pf = verified(at.pgdata)
        return pf.pid if pf else None

    def state(self, spec: ComputeSpec) -> ComputeState:
        return ComputeState.ACTIVE if self.pid(spec) is not None else ComputeState.IDLE

    def process(self, spec: ComputeSpec) -> ComputeProcess | None:
        at = self.layout.place(spec)
        self._reap(at.pgdata)
        pf = verified(at.pgdata)
        return None if pf is None else _as_process(pf, at)

    def address(self, spec: ComputeSpec) -> ComputeAddress | None:
        """Where the running compute takes connections; None when it does not run."""
        process = self.process(spec)
        return None if process is None else process.address

    def reserve_address(self, spec: ComputeSpec) -> ComputeSpec:
        """The spec with its port hint settled (the last one when free, else a free one),
        so that ``expected_address`` is known before the start: a pooled wake starts
        PgBouncer beside Postgres, pointed at where Postgres will listen."""
        if spec.port and port_is_free(spec.port):
            return spec
        return replace(spec, port=_free_port())

    def expected_address(self, spec: ComputeSpec) -> ComputeAddress | None:
        """Where the compute will listen once started with this spec (its private socket
        and the port hint), running or not; None when that is not known yet."""
        if not spec.port:
            return None
        return ComputeAddress(str(self.layout.place(spec).socket_dir), spec.port)

    def connect(self, spec: ComputeSpec, dbname: str = "postgres", user: str | None = None,
                autocommit: bool = True) -> psycopg.Connection:
        """A connection over the unix socket, tagged ``application_name = 'argon'``."""
        at = self.layout.place(spec)
        pf = verified(at.pgdata)
        if pf is None:
            raise Unavailable(f"compute {spec.endpoint_id} is not running; start the "
                              "endpoint first")
        # where the postmaster says it listens (another Argon process on a shared home
        # started it: its socket is in that process's run directory, not ours)
        if pf.socket_dir is not None:
            at = replace(at, socket_dir=pf.socket_dir)
        return self._connect(spec, at, pf.port, dbname, user, autocommit)

    def client_sessions(self, spec: ComputeSpec) -> int:
        """Client backends other than Argon's own (used to decide idleness), and logical
        walsenders (a subscriber's, connected to a database): a subscriber keeps its
        publisher awake as on Neon; physical ones (a replica's) do not.  Backends the
        proxy keeps for a direct door's next client (idle, the proxy's marked query their
        last, ``argon.proxy.backend_reset``) are not sessions."""
        with self.connect(spec) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE (backend_type = 'client backend'"
                " OR (backend_type = 'walsender' AND datname IS NOT NULL))"
                " AND application_name IS DISTINCT FROM %s AND pid <> pg_backend_pid()"
                " AND NOT (state = 'idle' AND starts_with(query, %s))",
                (APPLICATION_NAME, KEPT_LOGIN_MARKER)).fetchone()
        return int(row[0]) if row else 0

    # -- start ---------------------------------------------------------------------------

    def start(self, spec: ComputeSpec,
              ready: Callable[[ComputeAddress], None] | None = None) -> ComputeAddress:
        """Start the compute and return where it takes sessions, once it does (idempotent).

        A running compute is returned as it is (its real port is in the result).  The
        port of ``spec.port`` is kept when it is free, else (and for 0) a free one is
        picked: a PgBouncer that remembered the old port finds the compute again.

        ``ready`` (a wake) is told the address as soon as Postgres takes sessions, before
        the check of cloud_admin's password: client sessions need only their own roles,
        and the final pg_hba.conf (no trust line) is in place before the spawn.  It is
        not called when the start upgrades cloud_admin's password (bootstrap file), nor
        for an archive recovery (a branch's first start at a past point), whose
        postmaster says "ready" while still a read-only hot standby; crash recovery
        takes no sessions until it is done.
        """
        return self.start_process(spec, ready).address

    def start_process(self, spec: ComputeSpec,
                      ready: Callable[[ComputeAddress], None] | None = None) -> ComputeProcess:
        """``start``, answering the process (pid, start time) with its address."""
        if not spec.admin_password:
            raise ComputeError(f"compute {spec.endpoint_id}: the spec has no admin_password; "
                               "computes never trust anyone, not even Argon")
        at = self.layout.place(spec)
        with self._lock(at.pgdata):
            self._reap(at.pgdata)
            pf = verified(at.pgdata)
            if pf is not None:
                # found running (e.g. after an Argon crash): finish an interrupted upgrade
                self._ensure_admin_auth(spec, at, pf)
                return _as_process(pf, at)
            if spec.port == 0 or not port_is_free(spec.port):
                spec = replace(spec, port=_free_port())
            self._check_datadir(at, spec)
            self._clear_leftovers(spec, at)
            self._prepare_dirs(at)
            bootstrap = _needs_password_upgrade(spec, at)
            write_config(spec, at, self.owner, bootstrap=bootstrap)
            proc, log_offset = self._spawn(spec, at)
            process = self._wait_ready(spec, at, proc, log_offset,
                                       None if bootstrap or _archive_recovery(at) else ready)
            pf = verified(at.pgdata)
            if pf is None:
                raise _start_error(spec, at, "Postgres exited right after it was ready",
                                   log_offset)
            self._ensure_admin_auth(spec, at, pf)
            return process

    def _check_datadir(self, at: Placement, spec: ComputeSpec) -> None:
        version_file = at.pgdata / "PG_VERSION"
        if not version_file.is_file():
            raise NotFound(f"{at.pgdata} is not a Postgres data directory (no PG_VERSION); "
                           "the endpoint's timeline may have been deleted")
        major = int(version_file.read_text().strip().split(".")[0])
        if major != spec.install.version:
            raise InvalidInput(f"data directory {at.pgdata} is PostgreSQL {major} but the "
                               f"endpoint runs PostgreSQL {spec.install.version}; use the "
                               "project's pg_version")

    def _clear_leftovers(self, spec: ComputeSpec, at: Placement) -> None:
        """Clear what a dead postmaster left behind, so that Postgres agrees to start.

        After a kill -9 the old postmaster may still be exiting and its orphaned
        backends still hold its shared memory: wait for both (they exit by themselves
        on noticing the postmaster's death).  A pid file or socket lock file whose pid
        now belongs to an unrelated process would make Postgres refuse to start: remove
        them (the socket directory is this endpoint's alone).
        """
        pf = PidFile.read(at.pgdata)
        if pf is None and not (at.pgdata / PIDFILE).exists():
            return
        deadline = time.monotonic() + ORPHAN_WAIT_SECONDS
        if pf is not None:
            while (exiting_postmaster(pf.pid, at.pgdata, pf.started_at)
                   and time.monotonic() < deadline):
                time.sleep(0.005)
        orphans = _processes_in(at.pgdata)
        while orphans and time.monotonic() < deadline:
            time.sleep(0.02)
            orphans = [p for p in orphans if process_in(p, at.pgdata)]
        for pid in orphans:
            logger.warning("compute %s: killing orphaned postgres process %d",
                           spec.endpoint_id, pid)
            _signal(pid, signal.SIGKILL)
        if verified(at.pgdata) is None:
            (at.pgdata / PIDFILE).unlink(missing_ok=True)
            for lock in at.socket_dir.glob(".s.PGSQL.*.lock"):
                lock.unlink(missing_ok=True)
            logger.info("compute %s: removed a stale %s", spec.endpoint_id, PIDFILE)

    def _prepare_dirs(self, at: Placement) -> None:
        prepare_socket_dir(at.socket_dir, self.owner)
        at.log_path.parent.mkdir(parents=True, exist_ok=True)

    def _spawn(self, spec: ComputeSpec, at: Placement) -> tuple[subprocess.Popen[bytes], int]:
        with at.log_path.open("ab") as log:
            offset = log.tell()
            argv, as_owner = self.owner.spawn_args(
                [spec.install.bin("postgres"), "-D", str(at.pgdata)])
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=at.pgdata, env=child_env(), start_new_session=True, close_fds=True,
                **as_owner,  # type: ignore[arg-type]
            )
        self._children[at.pgdata] = proc
        logger.debug("compute %s: spawned postmaster %d", spec.endpoint_id, proc.pid)
        return proc, offset

    def _wait_ready(self, spec: ComputeSpec, at: Placement, proc: subprocess.Popen[bytes],
                    log_offset: int, tell: Callable[[ComputeAddress], None] | None = None
                    ) -> ComputeProcess:
        # a replica stays in recovery (standby); a static compute is a promoted clone
        replica = spec.mode is ComputeMode.REPLICA
        wanted = {STATUS_READY, STATUS_STANDBY} if replica else {STATUS_READY}
        # a client let in early builds its own database's caches: check where none is
        check_db = "postgres" if tell is not None else spec.warm_database
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = proc.poll()
            if code is not None:
                self._children.pop(at.pgdata, None)
                raise _start_error(spec, at, f"Postgres exited with code {code}", log_offset)
            pf = PidFile.read(at.pgdata)
            if pf is not None and pf.pid == proc.pid and pf.status in wanted:
                if tell is not None:   # once: client sessions may begin
                    tell(_as_process(pf, at).address)
                    tell = None
                if self._accepts(spec, at, pf, check_db):
                    logger.info("compute %s: ready (pid %d, port %d)", spec.endpoint_id,
                                pf.pid, pf.port)
                    return _as_process(pf, at)
            if time.monotonic() > deadline:
                logger.warning("compute %s: not ready after %.0f s; stopping it",
                               spec.endpoint_id, self.start_timeout)
                self._terminate(spec, at, proc.pid)
                raise _start_error(spec, at, "Postgres was not ready after "
                                   f"{self.start_timeout:.0f} s", log_offset)
            time.sleep(STATUS_POLL_SECONDS)

    def _accepts(self, spec: ComputeSpec, at: Placement, pf: PidFile, dbname: str) -> bool:
        """One real session: computes other than replicas must have left recovery (a
        hot standby's status line also reads "ready"); and the check that cloud_admin's
        password is the spec's."""
        try:
            with self._check_session(spec, at, pf, dbname) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.OperationalError as exc:
            if _auth_refused(exc):
                # the marker says the password is set but pg_authid disagrees (a data
                # directory from elsewhere): upgrade it again, trusted on the socket
                logger.warning("compute %s: cloud_admin's password was refused; setting it "
                               "again", spec.endpoint_id)
                admin_auth.forget(at.pgdata)
                self._write_hba(spec, at, pf, bootstrap=True)
            return False
        return spec.mode is ComputeMode.REPLICA or (row is not None and not row[0])

    def _check_session(self, spec: ComputeSpec, at: Placement, pf: PidFile,
                       dbname: str) -> psycopg.Connection:
        if dbname != "postgres":
            try:
                return self._connect(spec, at, pf.port, dbname, None, True)
            except psycopg.OperationalError as exc:
                if not _no_database(exc):
                    raise
                # dropped with SQL since the metadata last heard of it: only a warm-up lost
        return self._connect(spec, at, pf.port, "postgres", None, True)

    # -- cloud_admin's password ----------------------------------------------------------

    def _ensure_admin_auth(self, spec: ComputeSpec, at: Placement, pf: PidFile) -> None:
        """Leave the running compute with cloud_admin's password set and no trust line.

        Every step can be redone: crash before the marker and the next start sets the
        password again; crash after it and the next start (or re-adoption) writes the
        final pg_hba.conf.
        """
        if _needs_password_upgrade(spec, at):
            self._write_hba(spec, at, pf, bootstrap=True)
            with self._trusted(at, pf) as conn:
                admin_auth.set_password(conn, spec.admin_password)
            admin_auth.mark_set(at.pgdata, spec, self.owner)
            logger.info("compute %s: cloud_admin now logs in with its project's password",
                        spec.endpoint_id)
        self._write_hba(spec, at, pf, bootstrap=False)

    def _write_hba(self, spec: ComputeSpec, at: Placement, pf: PidFile, *,
                   bootstrap: bool) -> None:
        """Write pg_hba.conf if it differs, and make the postmaster load it (SIGHUP),
        waiting until a password-less cloud_admin is refused (final) or let in
        (bootstrap)."""
        path = at.pgdata / "pg_hba.conf"
        text = render_hba(bootstrap=bootstrap)
        try:
            current = path.read_text()
        except OSError:
            current = ""
        if current == text:
            return
        atomic_write(path, text, self.owner)
        _signal(pf.pid, signal.SIGHUP)
        deadline = time.monotonic() + HBA_RELOAD_SECONDS
        while time.monotonic() < deadline:
            if self._passwordless_accepted(at, pf) == bootstrap:
                return
            time.sleep(READY_POLL_SECONDS)
        raise ComputeError(f"compute {spec.endpoint_id} did not reload pg_hba.conf within "
                           f"{HBA_RELOAD_SECONDS:.0f} s")

    def _passwordless_accepted(self, at: Placement, pf: PidFile) -> bool | None:
        try:
            with self._trusted(at, pf):
                return True
        except psycopg.OperationalError as exc:
            return False if _auth_refused(exc) else None

    def _trusted(self, at: Placement, pf: PidFile) -> psycopg.Connection:
        """cloud_admin without a password: only the bootstrap pg_hba.conf lets it in."""
        return psycopg.connect(host=str(at.socket_dir), port=pf.port, dbname="postgres",
                               user=self.superuser, password="", passfile=NO_PASSFILE,
                               application_name=APPLICATION_NAME, autocommit=True,
                               connect_timeout=10)

    # -- stop ----------------------------------------------------------------------------

    def stop(self, spec: ComputeSpec, mode: str = "fast") -> None:
        """Stop the compute with Postgres' ``mode`` and wait for it to exit (idempotent).

        If it has not exited after ``stop_timeout`` the stop escalates to immediate, then
        to SIGKILL of the whole process tree.
        """
        if mode not in STOP_SIGNALS:
            raise InvalidInput(f"unknown stop mode {mode!r}; use one of "
                               f"{', '.join(STOP_SIGNALS)}")
        at = self.layout.place(spec)
        with self._lock(at.pgdata):
            self._reap(at.pgdata)
            pf = verified(at.pgdata)
            if pf is None:
                return
            _signal(pf.pid, STOP_SIGNALS[mode])
            if self._wait_exit(at, pf.pid, self.stop_timeout):
                logger.info("compute %s: stopped (%s)", spec.endpoint_id, mode)
                return
            logger.warning("compute %s: still running %.0f s after a %s stop; escalating",
                           spec.endpoint_id, self.stop_timeout, mode)
            self._terminate(spec, at, pf.pid)

    def _terminate(self, spec: ComputeSpec, at: Placement, pid: int) -> None:
        """Immediate shutdown, then SIGKILL of the tree if even that hangs."""
        _signal(pid, signal.SIGQUIT)
        if self._wait_exit(at, pid, 10.0):
            return
        for child in process_tree(pid):
            _signal(child, signal.SIGKILL)
        if not self._wait_exit(at, pid, 10.0):
            raise ComputeError(f"compute {spec.endpoint_id} (pid {pid}) did not exit even "
                               "after SIGKILL; check the host (D-state process?)")

    def _wait_exit(self, at: Placement, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        delay = 0.002
        while time.monotonic() < deadline:
            child = self._children.get(at.pgdata)
            if child is not None and child.pid == pid:
                if child.poll() is not None:
                    self._children.pop(at.pgdata, None)
                    return True
            elif not is_postmaster_of(pid, at.pgdata):
                return True
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return False

    # -- helpers -------------------------------------------------------------------------

    def _connect(self, spec: ComputeSpec, at: Placement, port: int, dbname: str,
                 user: str | None, autocommit: bool) -> psycopg.Connection:
        user = user or self.superuser
        # Argon's own sessions log in as cloud_admin with the project's password; any
        # other user named here must have a password of its own (none is sent for it)
        password = spec.admin_password if user == self.superuser else ""
        return psycopg.connect(host=str(at.socket_dir), port=port, dbname=dbname,
                               user=user, password=password, passfile=NO_PASSFILE,
                               application_name=APPLICATION_NAME, autocommit=autocommit,
                               connect_timeout=10)

    def _lock(self, pgdata: Path) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(pgdata, threading.Lock())

    def _reap(self, pgdata: Path) -> None:
        """Collect our own dead postmaster so it is not a zombie holding its pid."""
        child = self._children.get(pgdata)
        if child is not None and child.poll() is not None:
            self._children.pop(pgdata, None)


def _archive_recovery(at: Placement) -> bool:
    """The next start recovers from an archive or as a standby (a signal file)."""
    return any((at.pgdata / name).exists() for name in ("recovery.signal", "standby.signal"))


def _needs_password_upgrade(spec: ComputeSpec, at: Placement) -> bool:
    """A replica cannot write pg_authid: its cloud_admin password is its primary's."""
    return spec.mode is not ComputeMode.REPLICA and not admin_auth.is_set(at.pgdata, spec)


def _as_process(pf: PidFile, at: Placement) -> ComputeProcess:
    socket_dir = pf.socket_dir or at.socket_dir
    return ComputeProcess(pid=pf.pid, started_at=pf.started_at,
                          address=ComputeAddress(str(socket_dir), pf.port))


def _auth_refused(exc: psycopg.OperationalError) -> bool:
    """The server refused the login itself (as opposed to not being reachable)."""
    text = str(exc)
    return (getattr(exc, "sqlstate", None) == "28P01" or "password authentication failed" in text
            or "no password supplied" in text)


def _no_database(exc: psycopg.OperationalError) -> bool:
    return getattr(exc, "sqlstate", None) == "3D000" or (
        "database" in str(exc) and "does not exist" in str(exc))


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _processes_in(pgdata: Path) -> list[int]:
    """Live postgres processes whose working directory is ``pgdata``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and process_in(int(entry.name), pgdata):
            out.append(int(entry.name))
    return [p for p in out if alive(p)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as Postgres binds
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _log_tail(path: Path, offset: int, lines: int = 25) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _start_error(spec: ComputeSpec, at: Placement, what: str, log_offset: int
                 ) -> ComputeError:
    tail = _log_tail(at.log_path, log_offset)
    problems = [line for line in tail.splitlines()
                if any(marker in line for marker in _SETTING_ERRORS)]
    if problems and spec.pg_settings:
        detail = "; ".join(line.split("  ", 1)[-1].strip() for line in problems)
        return InvalidComputeSetting(
            f"compute {spec.endpoint_id} did not start: Postgres refused its settings: "
            f"{detail}. Fix the endpoint's pg_settings and start it again.")
    return ComputeStartFailed(f"compute {spec.endpoint_id} did not start: {what}. "
                              f"Log ({at.log_path}):\n{tail}")
