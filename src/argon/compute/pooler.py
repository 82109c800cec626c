"""PgBouncer beside an endpoint, in transaction mode, for Neon's ``-pooler`` hosts.

PgBouncer listens on its private (0700) unix socket directory only, never on TCP, and
trusts nobody: every client logs in with SCRAM.  ``auth_user`` (cloud_admin, whose
project password is in ``auth_file``, 0600, readable by the Postgres account only) looks
other users' SCRAM verifiers up with ``auth_query``, so roles created later need no user
list to be rewritten.  PgBouncer then logs into the compute as the client with the SCRAM
keys recovered from the client's own proof (SCRAM pass-through, PgBouncer >= 1.14): the
proxy logs in with the client's ClientKey, so no password is stored for user roles.
The admin console (database ``pgbouncer``) is for cloud_admin, with its password.

PgBouncer runs in the foreground in its own session (it outlives an Argon restart),
writes its pid file into ``workdir``, and is re-adopted from that pid file once the
process is checked to be a pgbouncer started on this spec's ini file.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from argon.compute.config import atomic_write
from argon.compute.errors import ComputeError, ComputeStartFailed
from argon.compute.process import child_env
from argon.compute.placement import HostLayout
from argon.compute.sockets import prepare_socket_dir
from argon.compute.spec import ComputeAddress
from argon.errors import Unavailable
from argon.pg import OsUser

logger = logging.getLogger(__name__)

# scripts/pgbouncer.sh builds a current PgBouncer into /opt/argon/pgbouncer where the
# system's is too old (Debian 12 ships 1.18); the first new enough one wins.
BINARY_CANDIDATES = ("/opt/argon/pgbouncer/bin/pgbouncer", "/usr/sbin/pgbouncer",
                     "/usr/bin/pgbouncer")
# Protocol-level prepared statements (psycopg 3, postgres.js, asyncpg through -pooler
# hosts) need ``max_prepared_statements``, added in 1.21.
MIN_VERSION = (1, 21)
# Neon's pooler setting (its connection pooling docs).
MAX_PREPARED_STATEMENTS = 1000
INI_NAME = "pgbouncer.ini"
PID_NAME = "pgbouncer.pid"
AUTH_FILE_NAME = "auth_file.txt"
LOG_NAME = "pgbouncer.log"

# As Neon's pooler (compute/etc/pgbouncer.ini): only extra_float_digits is ignored.  The
# proxy sends on just user, database, application_name, replication, client_encoding and
# options (as Neon's does); PgBouncer keeps the parameters it tracks per client
# (client_encoding, DateStyle, TimeZone, standard_conforming_strings, application_name,
# and track_extra_parameters' default IntervalStyle) and refuses any other ``-c`` setting
# in options (search_path, statement_timeout, custom settings) with "unsupported startup
# parameter in options: <name>", which the proxy completes with Neon's advice.
IGNORED_STARTUP_PARAMETERS = ("extra_float_digits",)

STOP_TIMEOUT_SECONDS = 10.0
START_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class PoolerSpec:
    """A pooler for an endpoint, in front of the compute at ``upstream``."""

    endpoint_id: str
    upstream: ComputeAddress    # where the compute listens (its provider's answer)
    admin_password: str = field(default="", repr=False)   # cloud_admin's, as the compute's
    port: int = 0               # names the unix socket (.s.PGSQL.<port>); 0: keep or pick
    pool_size: int = 100        # Neon: ~0.9 x max_connections of the smallest compute
    max_client_conn: int = 10000  # Neon's value
    # (name, SCRAM verifier) of roles PgBouncer checks by itself (control/pooler_roles.py)
    roles: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class PoolerPlacement:
    """The local pooler's paths (``PoolerManager``'s own business)."""

    socket_dir: Path            # private unix socket directory the proxy connects to
    workdir: Path               # ini, pid file and log


def render_pgbouncer_ini(spec: PoolerSpec, at: PoolerPlacement,
                         superuser: str = "cloud_admin") -> str:
    """The whole ini file for ``spec`` (pure)."""
    up = spec.upstream
    settings = {
        "max_prepared_statements": str(MAX_PREPARED_STATEMENTS),
        "listen_addr": "",                 # no TCP listener: the unix socket only
        "listen_port": str(spec.port),
        "unix_socket_dir": str(at.socket_dir),
        "unix_socket_mode": "0700",
        "pidfile": str(at.workdir / PID_NAME),
        "auth_type": "scram-sha-256",
        "auth_file": str(at.workdir / AUTH_FILE_NAME),
        "auth_user": superuser,
        "auth_query": "SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename=$1",
        "admin_users": superuser,
        "pool_mode": "transaction",
        "default_pool_size": str(spec.pool_size),
        "max_client_conn": str(spec.max_client_conn),
        "ignore_startup_parameters": ",".join(IGNORED_STARTUP_PARAMETERS),
        # idle server connections count as sessions on the compute and would keep it
        # from suspending; give them back well before the suspend timeout
        "server_idle_timeout": "30",
        # after a compute restart (same port) reconnect within a second, and an open
        # session's query fails after 10 s rather than 120 s if it stays down
        "server_login_retry": "1",
        "query_wait_timeout": "10",
        "application_name_add_host": "0",
    }
    lines = [
        "; managed by Argon: rewritten at every start, do not edit",
        f"; pooler for endpoint {spec.endpoint_id}",
        "[databases]",
        f"* = host={up.host} port={up.port}",
        "",
        "[pgbouncer]",
        *(f"{k} = {v}" for k, v in sorted(settings.items())),
    ]
    return "\n".join(lines) + "\n"


def render_auth_file(spec: PoolerSpec, superuser: str = "cloud_admin") -> str:
    """auth_file: the auth_user with its password in clear, since PgBouncer must log in
    with it to run ``auth_query``; then the SCRAM verifiers of ``spec.roles``, which
    PgBouncer checks clients against without that login (and logs in with the client's
    SCRAM keys)."""
    def q(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'
    lines = [f"{q(superuser)} {q(spec.admin_password)}"]
    lines += [f"{q(name)} {q(verifier)}" for name, verifier in spec.roles if name != superuser]
    return "\n".join(lines) + "\n"


class PoolerManager:
    """The local pooler provider (``argon.compute.provider.PoolerProvider``)."""

    def __init__(self, owner: OsUser, layout: HostLayout, binary: str | None = None,
                 superuser: str = "cloud_admin") -> None:
        self.binary, self.version = find_pgbouncer(binary)
        self.owner = owner
        self.layout = layout
        self.superuser = superuser
        self._children: dict[Path, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def _place(self, spec: PoolerSpec) -> PoolerPlacement:
        return PoolerPlacement(socket_dir=self.layout.pooler_socket_dir(spec.endpoint_id),
                               workdir=self.layout.pooler_workdir(spec.endpoint_id))

    def pid(self, spec: PoolerSpec) -> int | None:
        """The running PgBouncer's pid from its verified pid file, else None."""
        workdir = self._place(spec).workdir
        self._reap(workdir)
        try:
            pid = int((workdir / PID_NAME).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_pgbouncer_for(pid, workdir / INI_NAME) else None

    def port(self, spec: PoolerSpec) -> int | None:
        """The port the running PgBouncer listens on (its socket is named after it)."""
        if self.pid(spec) is None:
            return None
        return _ini_port(self._place(spec).workdir / INI_NAME)

    def address(self, spec: PoolerSpec) -> ComputeAddress | None:
        """The pooled address of the running PgBouncer; None when it does not run."""
        port = self.port(spec)
        return None if port is None else ComputeAddress(
            str(self._place(spec).socket_dir), port)

    def start(self, spec: PoolerSpec) -> ComputeAddress:
        """Start PgBouncer (or reload it if its ini changed); returns its pooled address.

        ``spec.port`` 0 means "keep the running one's port, or pick a free one".
        """
        pid = self.start_process(spec)
        address = self.address(spec)
        if address is None:
            raise ComputeStartFailed(f"pgbouncer for {spec.endpoint_id} (pid {pid}) does "
                                     "not run right after its start")
        return address

    def start_process(self, spec: PoolerSpec) -> int:
        """``start``, answering PgBouncer's pid."""
        at = self._place(spec)
        workdir = at.workdir
        with self._lock:
            ini = workdir / INI_NAME
            running = self.pid(spec)
            if spec.port == 0:
                port = (_ini_port(ini) if running is not None else None) or _free_port()
                spec = replace(spec, port=port)
            if not spec.admin_password:
                raise ComputeError(f"pooler {spec.endpoint_id}: the compute spec has no "
                                   "admin_password; PgBouncer trusts nobody")
            text = render_pgbouncer_ini(spec, at, self.superuser)
            auth_file, auth_text = workdir / AUTH_FILE_NAME, render_auth_file(
                spec, self.superuser)
            if running is not None and _ini_value(ini, "listen_addr") != "":
                # started by an older Argon (TCP listener, trust): a reload cannot close
                # a listener, so restart it
                logger.warning("pooler %s: restarting a PgBouncer that listens on TCP",
                               spec.endpoint_id)
                self._kill(spec, running)
                running = None
            if running is not None:
                if not ini.exists() or ini.read_text() != text or _read(auth_file) != auth_text:
                    atomic_write(auth_file, auth_text, self.owner)
                    atomic_write(ini, text, self.owner)
                    os.kill(running, signal.SIGHUP)  # e.g. the compute came back on a new port
                    logger.info("pooler %s: reloaded with a new configuration",
                                spec.endpoint_id)
                return running
            workdir.mkdir(parents=True, exist_ok=True)
            workdir.chmod(0o700)
            self.owner.chown(workdir)
            prepare_socket_dir(at.socket_dir, self.owner)
            (workdir / PID_NAME).unlink(missing_ok=True)
            atomic_write(auth_file, auth_text, self.owner)   # 0600, the Postgres account's
            atomic_write(ini, text, self.owner)
            with (workdir / LOG_NAME).open("ab") as log:
                offset = log.tell()
                argv, as_owner = self.owner.spawn_args([self.binary, str(ini)])
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, cwd=workdir, env=child_env(),
                    start_new_session=True, **as_owner)  # type: ignore[arg-type]
            self._children[workdir] = proc
            self._wait_ready(spec, proc, offset)
            logger.info("pooler %s: started (pid %d, port %d)", spec.endpoint_id, proc.pid,
                        spec.port)
            return proc.pid

    def _wait_ready(self, spec: PoolerSpec, proc: subprocess.Popen[bytes], offset: int) -> None:
        at = self._place(spec)
        workdir = at.workdir
        path = str(at.socket_dir / f".s.PGSQL.{spec.port}")
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                raise ComputeStartFailed(
                    f"pgbouncer for {spec.endpoint_id} exited with code {code}: "
                    f"{_tail(workdir / LOG_NAME, offset)}")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(path)
                    # PgBouncer may accept before writing its pid file; pid() and port()
                    # read that file, so ready means both.
                    if self.pid(spec) == proc.pid:
                        return
                except OSError:
                    pass
            time.sleep(0.005)
        self._kill(spec, proc.pid)
        raise ComputeStartFailed(f"pgbouncer for {spec.endpoint_id} did not listen on {path} "
                                 f"within {START_TIMEOUT_SECONDS:.0f} s: "
                                 f"{_tail(workdir / LOG_NAME, offset)}")

    def stop(self, spec: PoolerSpec) -> None:
        """Stop PgBouncer (clients are disconnected, as a fast compute stop does)."""
        with self._lock:
            pid = self.pid(spec)
            if pid is not None:
                self._kill(spec, pid)
                logger.info("pooler %s: stopped", spec.endpoint_id)

    def _kill(self, spec: PoolerSpec, pid: int) -> None:
        # Immediate shutdown (clients are cut, as a fast compute stop does): SIGQUIT from
        # 1.23 on, where SIGTERM became a "super safe" shutdown waiting for every client;
        # SIGTERM before.  Then KILL.
        first = signal.SIGQUIT if self.version >= (1, 23) else signal.SIGTERM
        for sig, wait in ((first, STOP_TIMEOUT_SECONDS), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            if self._wait_exit(spec, pid, wait):
                break
        else:
            raise ComputeError(f"pgbouncer {pid} for {spec.endpoint_id} did not exit")
        (self._place(spec).workdir / PID_NAME).unlink(missing_ok=True)

    def _wait_exit(self, spec: PoolerSpec, pid: int, timeout: float) -> bool:
        workdir = self._place(spec).workdir
        deadline = time.monotonic() + timeout
        ini = workdir / INI_NAME
        while time.monotonic() < deadline:
            child = self._children.get(workdir)
            if child is not None and child.pid == pid:
                if child.poll() is not None:
                    self._children.pop(workdir, None)
                    return True
            elif not _is_pgbouncer_for(pid, ini):
                return True
            time.sleep(0.005)
        return False

    def _reap(self, workdir: Path) -> None:
        child = self._children.get(workdir)
        if child is not None and child.poll() is not None:
            self._children.pop(workdir, None)


def pgbouncer_version(binary: str) -> tuple[int, ...] | None:
    """``PgBouncer 1.24.1`` (first line of ``--version``) -> (1, 24, 1); None if it fails."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=10, env=child_env()).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for word in (out.splitlines() or [""])[0].split():
        parts = word.split(".")
        if len(parts) >= 2 and all(p.isdigit() for p in parts):
            return tuple(int(p) for p in parts)
    return None


def find_pgbouncer(binary: str | None = None) -> tuple[str, tuple[int, ...]]:
    """The PgBouncer to run and its version: ``binary`` if given, else the first new
    enough candidate.  An old or missing one is refused with what to do."""
    candidates = [binary] if binary else [*BINARY_CANDIDATES, shutil.which("pgbouncer")]
    too_old: list[str] = []
    for path in dict.fromkeys(c for c in candidates if c):
        if not os.access(path, os.X_OK):
            continue
        version = pgbouncer_version(path)
        if version is None:
            continue
        if version >= MIN_VERSION:
            return path, version
        too_old.append(f"{'.'.join(map(str, version))} at {path}")
    need = ".".join(map(str, MIN_VERSION))
    if too_old:
        raise Unavailable(f"PgBouncer {', '.join(too_old)} is too old: pooled hosts need "
                          f"PgBouncer >= {need} (protocol-level prepared statements); run "
                          "scripts/pgbouncer.sh as root to build a current one")
    raise Unavailable(f"no PgBouncer found: pooled hosts need PgBouncer >= {need}; run "
                      "scripts/pgbouncer.sh as root (or apt-get install pgbouncer where "
                      "the distribution ships a current one)")


def _is_pgbouncer_for(pid: int, ini: Path) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state in ("Z", "X") or not argv:
        return False
    return (os.path.basename(argv[0].decode(errors="replace")) == "pgbouncer"
            and str(ini).encode() in argv)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _ini_value(ini: Path, name: str) -> str | None:
    try:
        for line in ini.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return None


def _ini_port(ini: Path) -> int | None:
    try:
        return int(_ini_value(ini, "listen_port") or "")
    except ValueError:
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, offset: int, lines: int = 15) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return "\n".join(f.read().decode(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
