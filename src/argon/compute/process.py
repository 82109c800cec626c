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
from dataclasses import replace
from pathlib import Path

import psycopg

from argon.compute import admin_auth
from argon.compute.config import atomic_write, render_hba, write_config
from argon.compute.errors import ComputeError, ComputeStartFailed, InvalidComputeSetting
from argon.compute.pidfile import (PIDFILE, STATUS_READY, STATUS_STANDBY, PidFile, alive,
                                   exiting_postmaster, is_postmaster_of, process_in,
                                   process_tree, verified)
from argon.compute.sockets import prepare_socket_dir
from argon.compute.spec import ComputeMode, ComputeProcess, ComputeSpec, ComputeState
from argon.errors import InvalidInput, NotFound, Unavailable
from argon.pg import OsUser

logger = logging.getLogger(__name__)

# Postgres' shutdown modes and the signal the postmaster expects for each.
STOP_SIGNALS: dict[str, signal.Signals] = {
    "smart": signal.SIGTERM,      # wait for clients to disconnect
    "fast": signal.SIGINT,        # roll back and disconnect clients, clean shutdown
    "immediate": signal.SIGQUIT,  # no shutdown checkpoint; crash recovery at next start
}

APPLICATION_NAME = "argon"      # Argon's own sessions; client_sessions() skips them
READY_POLL_SECONDS = 0.005
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
    def __init__(self, owner: OsUser, superuser: str = "cloud_admin", *,
                 start_timeout: float = 300.0, stop_timeout: float = 60.0) -> None:
        self.owner = owner
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
        self._reap(spec.pgdata)
        pf = verified(spec.pgdata)
        return pf.pid if pf else None

    def state(self, spec: ComputeSpec) -> ComputeState:
        return ComputeState.ACTIVE if self.pid(spec) is not None else ComputeState.IDLE

    def process(self, spec: ComputeSpec) -> ComputeProcess | None:
        self._reap(spec.pgdata)
        pf = verified(spec.pgdata)
        return None if pf is None else _as_process(pf, spec)

    def connect(self, spec: ComputeSpec, dbname: str = "postgres", user: str | None = None,
                autocommit: bool = True) -> psycopg.Connection:
        """A connection over the unix socket, tagged ``application_name = 'argon'``."""
        pf = verified(spec.pgdata)
        if pf is None:
            raise Unavailable(f"compute {spec.endpoint_id} is not running; start the "
                              "endpoint first")
        return self._connect(spec, pf.port, dbname, user, autocommit)

    def client_sessions(self, spec: ComputeSpec) -> int:
        """Client backends other than Argon's own (used to decide idleness), and logical
        walsenders (a subscriber's, connected to a database): a subscriber keeps its
        publisher awake as on Neon; physical ones (a replica's) do not."""
        with self.connect(spec) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE (backend_type = 'client backend'"
                " OR (backend_type = 'walsender' AND datname IS NOT NULL))"
                " AND application_name IS DISTINCT FROM %s AND pid <> pg_backend_pid()",
                (APPLICATION_NAME,)).fetchone()
        return int(row[0]) if row else 0

    # -- start ---------------------------------------------------------------------------

    def start(self, spec: ComputeSpec) -> ComputeProcess:
        """Start the compute and return once it accepts sessions (idempotent).

        A running compute is returned as it is (its real port is in the result).
        ``spec.port`` 0 picks a free port.
        """
        if not spec.admin_password:
            raise ComputeError(f"compute {spec.endpoint_id}: the spec has no admin_password; "
                               "computes never trust anyone, not even Argon")
        with self._lock(spec.pgdata):
            self._reap(spec.pgdata)
            pf = verified(spec.pgdata)
            if pf is not None:
                # found running (e.g. after an Argon crash): finish an interrupted upgrade
                self._ensure_admin_auth(spec, pf)
                return _as_process(pf, spec)
            if spec.port == 0:
                spec = replace(spec, port=_free_port())
            self._check_datadir(spec)
            self._clear_leftovers(spec)
            self._prepare_dirs(spec)
            write_config(spec, self.owner, bootstrap=_needs_password_upgrade(spec))
            proc, log_offset = self._spawn(spec)
            process = self._wait_ready(spec, proc, log_offset)
            pf = verified(spec.pgdata)
            if pf is None:
                raise _start_error(spec, "Postgres exited right after it was ready", log_offset)
            self._ensure_admin_auth(spec, pf)
            return process

    def _check_datadir(self, spec: ComputeSpec) -> None:
        version_file = spec.pgdata / "PG_VERSION"
        if not version_file.is_file():
            raise NotFound(f"{spec.pgdata} is not a Postgres data directory (no PG_VERSION); "
                           "the endpoint's timeline may have been deleted")
        major = int(version_file.read_text().strip().split(".")[0])
        if major != spec.install.version:
            raise InvalidInput(f"data directory {spec.pgdata} is PostgreSQL {major} but the "
                               f"endpoint runs PostgreSQL {spec.install.version}; use the "
                               "project's pg_version")

    def _clear_leftovers(self, spec: ComputeSpec) -> None:
        """Clear what a dead postmaster left behind, so that Postgres agrees to start.

        After a kill -9 the old postmaster may still be exiting and its orphaned
        backends still hold its shared memory: wait for both (they exit by themselves
        on noticing the postmaster's death).  A pid file or socket lock file whose pid
        now belongs to an unrelated process would make Postgres refuse to start: remove
        them (the socket directory is this endpoint's alone).
        """
        pf = PidFile.read(spec.pgdata)
        if pf is None and not (spec.pgdata / PIDFILE).exists():
            return
        deadline = time.monotonic() + ORPHAN_WAIT_SECONDS
        if pf is not None:
            while (exiting_postmaster(pf.pid, spec.pgdata, pf.started_at)
                   and time.monotonic() < deadline):
                time.sleep(0.005)
        orphans = _processes_in(spec.pgdata)
        while orphans and time.monotonic() < deadline:
            time.sleep(0.02)
            orphans = [p for p in orphans if process_in(p, spec.pgdata)]
        for pid in orphans:
            logger.warning("compute %s: killing orphaned postgres process %d",
                           spec.endpoint_id, pid)
            _signal(pid, signal.SIGKILL)
        if verified(spec.pgdata) is None:
            (spec.pgdata / PIDFILE).unlink(missing_ok=True)
            for lock in spec.socket_dir.glob(".s.PGSQL.*.lock"):
                lock.unlink(missing_ok=True)
            logger.info("compute %s: removed a stale %s", spec.endpoint_id, PIDFILE)

    def _prepare_dirs(self, spec: ComputeSpec) -> None:
        prepare_socket_dir(spec.socket_dir, self.owner)
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)

    def _spawn(self, spec: ComputeSpec) -> tuple[subprocess.Popen[bytes], int]:
        with spec.log_path.open("ab") as log:
            offset = log.tell()
            proc = subprocess.Popen(
                [spec.install.bin("postgres"), "-D", str(spec.pgdata)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=spec.pgdata, env=child_env(), start_new_session=True, close_fds=True,
                **self.owner.popen_kwargs(),  # type: ignore[arg-type]
            )
        self._children[spec.pgdata] = proc
        logger.debug("compute %s: spawned postmaster %d", spec.endpoint_id, proc.pid)
        return proc, offset

    def _wait_ready(self, spec: ComputeSpec, proc: subprocess.Popen[bytes],
                    log_offset: int) -> ComputeProcess:
        # a replica stays in recovery (standby); a static compute is a promoted clone
        replica = spec.mode is ComputeMode.REPLICA
        wanted = {STATUS_READY, STATUS_STANDBY} if replica else {STATUS_READY}
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = proc.poll()
            if code is not None:
                self._children.pop(spec.pgdata, None)
                raise _start_error(spec, f"Postgres exited with code {code}", log_offset)
            pf = PidFile.read(spec.pgdata)
            if pf is not None and pf.pid == proc.pid and pf.status in wanted:
                ready = self._accepts(spec, pf)
                if ready:
                    logger.info("compute %s: ready (pid %d, port %d)", spec.endpoint_id,
                                pf.pid, pf.port)
                    return _as_process(pf, spec)
            if time.monotonic() > deadline:
                logger.warning("compute %s: not ready after %.0f s; stopping it",
                               spec.endpoint_id, self.start_timeout)
                self._terminate(spec, proc.pid)
                raise _start_error(spec, f"Postgres was not ready after {self.start_timeout:.0f}"
                                   " s", log_offset)
            time.sleep(READY_POLL_SECONDS)

    def _accepts(self, spec: ComputeSpec, pf: PidFile) -> bool:
        """One real session: computes other than replicas must have left recovery."""
        try:
            with self._connect(spec, pf.port, "postgres", None, True) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.OperationalError as exc:
            if _auth_refused(exc):
                # the marker says the password is set but pg_authid disagrees (a data
                # directory from elsewhere): upgrade it again, trusted on the socket
                logger.warning("compute %s: cloud_admin's password was refused; setting it "
                               "again", spec.endpoint_id)
                admin_auth.forget(spec)
                self._write_hba(spec, pf, bootstrap=True)
            return False
        return spec.mode is ComputeMode.REPLICA or (row is not None and not row[0])

    # -- cloud_admin's password ----------------------------------------------------------

    def _ensure_admin_auth(self, spec: ComputeSpec, pf: PidFile) -> None:
        """Leave the running compute with cloud_admin's password set and no trust line.

        Every step can be redone: crash before the marker and the next start sets the
        password again; crash after it and the next start (or re-adoption) writes the
        final pg_hba.conf.
        """
        if _needs_password_upgrade(spec):
            self._write_hba(spec, pf, bootstrap=True)
            with self._trusted(spec, pf) as conn:
                admin_auth.set_password(conn, spec.admin_password)
            admin_auth.mark_set(spec, self.owner)
            logger.info("compute %s: cloud_admin now logs in with its project's password",
                        spec.endpoint_id)
        self._write_hba(spec, pf, bootstrap=False)

    def _write_hba(self, spec: ComputeSpec, pf: PidFile, *, bootstrap: bool) -> None:
        """Write pg_hba.conf if it differs, and make the postmaster load it (SIGHUP),
        waiting until a password-less cloud_admin is refused (final) or let in
        (bootstrap)."""
        path = spec.pgdata / "pg_hba.conf"
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
            if self._passwordless_accepted(spec, pf) == bootstrap:
                return
            time.sleep(READY_POLL_SECONDS)
        raise ComputeError(f"compute {spec.endpoint_id} did not reload pg_hba.conf within "
                           f"{HBA_RELOAD_SECONDS:.0f} s")

    def _passwordless_accepted(self, spec: ComputeSpec, pf: PidFile) -> bool | None:
        try:
            with self._trusted(spec, pf):
                return True
        except psycopg.OperationalError as exc:
            return False if _auth_refused(exc) else None

    def _trusted(self, spec: ComputeSpec, pf: PidFile) -> psycopg.Connection:
        """cloud_admin without a password: only the bootstrap pg_hba.conf lets it in."""
        return psycopg.connect(host=str(spec.socket_dir), port=pf.port, dbname="postgres",
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
        with self._lock(spec.pgdata):
            self._reap(spec.pgdata)
            pf = verified(spec.pgdata)
            if pf is None:
                return
            _signal(pf.pid, STOP_SIGNALS[mode])
            if self._wait_exit(spec, pf.pid, self.stop_timeout):
                logger.info("compute %s: stopped (%s)", spec.endpoint_id, mode)
                return
            logger.warning("compute %s: still running %.0f s after a %s stop; escalating",
                           spec.endpoint_id, self.stop_timeout, mode)
            self._terminate(spec, pf.pid)

    def _terminate(self, spec: ComputeSpec, pid: int) -> None:
        """Immediate shutdown, then SIGKILL of the tree if even that hangs."""
        _signal(pid, signal.SIGQUIT)
        if self._wait_exit(spec, pid, 10.0):
            return
        for child in process_tree(pid):
            _signal(child, signal.SIGKILL)
        if not self._wait_exit(spec, pid, 10.0):
            raise ComputeError(f"compute {spec.endpoint_id} (pid {pid}) did not exit even "
                               "after SIGKILL; check the host (D-state process?)")

    def _wait_exit(self, spec: ComputeSpec, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        delay = 0.002
        while time.monotonic() < deadline:
            child = self._children.get(spec.pgdata)
            if child is not None and child.pid == pid:
                if child.poll() is not None:
                    self._children.pop(spec.pgdata, None)
                    return True
            elif not is_postmaster_of(pid, spec.pgdata):
                return True
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return False

    # -- helpers -------------------------------------------------------------------------

    def _connect(self, spec: ComputeSpec, port: int, dbname: str, user: str | None,
                 autocommit: bool) -> psycopg.Connection:
        user = user or self.superuser
        # Argon's own sessions log in as cloud_admin with the project's password; any
        # other user named here must have a password of its own (none is sent for it)
        password = spec.admin_password if user == self.superuser else ""
        return psycopg.connect(host=str(spec.socket_dir), port=port, dbname=dbname,
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


def _needs_password_upgrade(spec: ComputeSpec) -> bool:
    """A replica cannot write pg_authid: its cloud_admin password is its primary's."""
    return spec.mode is not ComputeMode.REPLICA and not admin_auth.is_set(spec)


def _as_process(pf: PidFile, spec: ComputeSpec) -> ComputeProcess:
    return ComputeProcess(pid=pf.pid, started_at=pf.started_at, port=pf.port,
                          socket_dir=pf.socket_dir or spec.socket_dir)


def _auth_refused(exc: psycopg.OperationalError) -> bool:
    """The server refused the login itself (as opposed to not being reachable)."""
    text = str(exc)
    return (getattr(exc, "sqlstate", None) == "28P01" or "password authentication failed" in text
            or "no password supplied" in text)


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


def _log_tail(path: Path, offset: int, lines: int = 25) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _start_error(spec: ComputeSpec, what: str, log_offset: int) -> ComputeError:
    tail = _log_tail(spec.log_path, log_offset)
    problems = [line for line in tail.splitlines()
                if any(marker in line for marker in _SETTING_ERRORS)]
    if problems and spec.pg_settings:
        detail = "; ".join(line.split("  ", 1)[-1].strip() for line in problems)
        return InvalidComputeSetting(
            f"compute {spec.endpoint_id} did not start: Postgres refused its settings: "
            f"{detail}. Fix the endpoint's pg_settings and start it again.")
    return ComputeStartFailed(f"compute {spec.endpoint_id} did not start: {what}. "
                              f"Log ({spec.log_path}):\n{tail}")
