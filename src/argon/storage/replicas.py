"""Read replicas' data directories: seeded from a branch's timeline, fed by its WAL.

Layout (inside the timeline, so deleting or replacing a branch's timeline takes its
replicas' data with it, and a restored branch re-seeds them on their next start)::

    <root>/<timeline_id>/replicas/<endpoint_id>/            the replica's pgdata
    <root>/<timeline_id>/replicas/.seeding-<endpoint_id>-*  a seed under way (removed
                                                            at the next seed or repair)

A replica is a hot standby (``standby.signal``) whose ``argon.storage.conf`` streams from
the primary's unix socket (``primary_conninfo``) and, when no primary runs, reads the
timeline's WAL archive and then the primary's own ``pg_wal``: a cleanly stopped primary
leaves its last, partial segment there only (Postgres archives full segments), and the
replica must still see every committed row.  ``render_replica_conf`` is pure.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from argon.errors import Conflict, InvalidInput
from argon.pg import OsUser
from argon.storage.branching import CloneJob, branch_running, branch_stopped
from argon.storage.conf import CONF_NAME, quote_conf
from argon.storage.drivers import CloneDriver
from argon.storage.interfaces import RunningBackup
from argon.storage.wal import DbState, read_control_file

logger = logging.getLogger(__name__)

REPLICAS_DIR = "replicas"
SEEDING_PREFIX = ".seeding-"
STANDBY_SIGNAL = "standby.signal"
# pg_controldata's names for the settings a hot standby needs at least as high
_CONTROLDATA_KEYS = {
    "max_connections setting": "max_connections",
    "max_worker_processes setting": "max_worker_processes",
    "max_prepared_xacts setting": "max_prepared_transactions",
    "max_locks_per_xact setting": "max_locks_per_transaction",
}


@dataclass(frozen=True)
class PrimaryConn:
    """Where a replica streams from: the primary compute's address (its provider's
    answer: a private unix socket directory today)."""

    host: str
    port: int
    user: str
    password: str
    application_name: str   # the replica's endpoint id: names it in pg_stat_replication

    def conninfo(self) -> str:
        def q(value: str) -> str:   # libpq keyword/value quoting
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        parts = {"host": self.host, "port": str(self.port), "user": self.user,
                 "password": self.password, "application_name": self.application_name,
                 "passfile": "/nonexistent/.pgpass", "connect_timeout": "5"}
        return " ".join(f"{k}={q(v)}" for k, v in parts.items())


def replica_restore_command(archives: Iterable[Path], primary_wal: Path) -> str:
    """Copy ``%f`` from the first archive that has it, else from the primary's pg_wal
    when the replica has no copy or an older one (a partial segment grows in place;
    without the ``-nt`` test an idle replica would copy a whole segment at every retry; dash's
    ``-nt`` is false when the second file is missing, hence the ``! -f``)."""
    quoted = " ".join(shlex.quote(str(d)) for d in archives).replace("%", "%%")
    wal = shlex.quote(str(primary_wal)).replace("%", "%%")
    return (f'for d in {quoted}; do if [ -f "$d/%f" ]; then exec cp "$d/%f" "%p"; fi; '
            f'done; p={wal}/%f; if [ -f "$p" ] && {{ [ ! -f "pg_wal/%f" ] || '
            '[ "$p" -nt "pg_wal/%f" ]; }; then exec cp "$p" "%p"; fi; exit 1')


def render_replica_conf(archives: tuple[Path, ...], primary_wal: Path,
                        primary: PrimaryConn | None) -> str:
    lines = [
        "# Written by Argon storage for a read replica; rewritten at every start. Do not edit.",
        "archive_mode = off",    # the primary archives the timeline's WAL, never a replica
        f"restore_command = {quote_conf(replica_restore_command(archives, primary_wal))}",
        "recovery_target_timeline = 'latest'",
    ]
    if primary is not None:
        lines.append(f"primary_conninfo = {quote_conf(primary.conninfo())}")
    return "\n".join(lines) + "\n"


class ReplicaStore:
    """Seed, configure and remove replica data directories of a ``Storage``'s timelines."""

    def __init__(self, root: Path, driver: CloneDriver, owner: OsUser,
                 primary_pgdata: Callable[[str], Path],
                 archive_dir: Callable[[str], Path]) -> None:
        self.root = Path(root)
        self.driver = driver
        self.owner = owner
        self._primary_pgdata = primary_pgdata
        self._archive_dir = archive_dir

    def _dir(self, timeline_id: str) -> Path:
        return self._primary_pgdata(timeline_id).parent / REPLICAS_DIR

    def pgdata(self, timeline_id: str, endpoint_id: str) -> Path:
        if "/" in endpoint_id or endpoint_id.startswith("."):
            raise InvalidInput(f"invalid endpoint id {endpoint_id!r}")
        return self._dir(timeline_id) / endpoint_id

    def exists(self, timeline_id: str, endpoint_id: str) -> bool:
        return (self.pgdata(timeline_id, endpoint_id) / "PG_VERSION").is_file()

    def recorded_minimums(self, timeline_id: str, endpoint_id: str,
                          pg_controldata: Path) -> dict[str, int]:
        """The primary's values of max_connections & co. recorded in the replica's
        pg_control (a hot standby refuses to start below them); {} when unreadable."""
        try:
            out = subprocess.run([str(pg_controldata), "-D",
                                  str(self.pgdata(timeline_id, endpoint_id))],
                                 capture_output=True, text=True, timeout=30,
                                 env={"LANG": "C", "LC_ALL": "C", "PATH": "/usr/bin:/bin"},
                                 check=True).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            logger.warning("replica %s: pg_controldata failed (%s); using its own settings",
                           endpoint_id, exc)
            return {}
        found: dict[str, int] = {}
        for line in out.splitlines():
            key, _, value = line.partition(":")
            name = _CONTROLDATA_KEYS.get(key.strip())
            if name is not None and value.strip().isdigit():
                found[name] = int(value.strip())
        return found

    # -- seeding -------------------------------------------------------------------
    def seed(self, timeline_id: str, endpoint_id: str,
             running_primary: RunningBackup | None) -> None:
        """A new standby data directory from the primary's (running: backup API;
        stopped: its clean shutdown checkpoint), then renamed into place at once."""
        self.remove(timeline_id, endpoint_id)
        parent = self._dir(timeline_id)
        parent.mkdir(mode=0o711, exist_ok=True)
        os.chmod(parent, 0o711)   # under Argon's umask 077: the Postgres account traverses
        staging = parent / f"{SEEDING_PREFIX}{endpoint_id}-{uuid.uuid4().hex[:8]}"
        src = self._primary_pgdata(timeline_id)
        job = CloneJob(src=src, dst=staging,
                       wal_sources=(src / "pg_wal", self._archive_dir(timeline_id)),
                       driver=self.driver, owner=self.owner)
        try:
            if running_primary is not None:
                branch_running(job, f"argon replica {endpoint_id}", running_primary)
            else:
                if (src / "backup_label").exists():
                    raise Conflict(f"timeline {timeline_id} has not finished its first "
                                   "recovery; start its primary once")
                branch_stopped(job, None)
            signal = staging / STANDBY_SIGNAL
            signal.touch(mode=0o600)
            self.owner.chown(signal)
            os.rename(staging, self.pgdata(timeline_id, endpoint_id))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        logger.info("seeded replica %s of timeline %s (%s primary)", endpoint_id,
                    timeline_id, "running" if running_primary else "stopped")

    def primary_stopped_cleanly(self, timeline_id: str) -> bool:
        """The primary's data directory can be cloned as it is (no pending recovery, no
        crash to recover from)."""
        src = self._primary_pgdata(timeline_id)
        if (src / "backup_label").exists():
            return False
        try:
            return read_control_file(src).state is DbState.SHUTDOWNED
        except OSError:
            return False

    def write_conf(self, timeline_id: str, endpoint_id: str,
                   primary: PrimaryConn | None) -> bool:
        """(Re)write the replica's recovery settings; True when they changed."""
        pgdata = self.pgdata(timeline_id, endpoint_id)
        text = render_replica_conf((self._archive_dir(timeline_id),),
                                   self._primary_pgdata(timeline_id) / "pg_wal", primary)
        path = pgdata / CONF_NAME
        try:
            if path.read_text() == text:
                return False
        except OSError:
            pass
        tmp = pgdata / (CONF_NAME + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.owner.chown(tmp)
        os.rename(tmp, path)
        return True

    # -- removal -------------------------------------------------------------------
    def remove(self, timeline_id: str, endpoint_id: str) -> None:
        """The replica's data and any unfinished seed of it (gone already: fine)."""
        parent = self._dir(timeline_id)
        if not parent.is_dir():
            return
        for entry in os.scandir(parent):
            if entry.name == endpoint_id or entry.name.startswith(
                    f"{SEEDING_PREFIX}{endpoint_id}-"):
                _remove_tree(parent, entry.name)

    def remove_everywhere(self, endpoint_id: str, keep_timeline: str | None = None) -> None:
        """The replica's data in every timeline but ``keep_timeline`` (a restore that
        kept the old timeline as a branch leaves the old copy behind)."""
        for tdir in self._timeline_dirs():
            if tdir.name != keep_timeline:
                self.remove(tdir.name, endpoint_id)

    def repair(self, wanted: set[tuple[str, str]]) -> list[str]:
        """At start-up: remove unfinished seeds and the data of replicas that no longer
        exist (or whose branch now has another timeline); ``wanted`` holds
        ``(timeline_id, endpoint_id)`` of every read_only endpoint."""
        done = []
        for tdir in self._timeline_dirs():
            rdir = tdir / REPLICAS_DIR
            for entry in os.scandir(rdir):
                seeding = entry.name.startswith(SEEDING_PREFIX)
                if seeding or (tdir.name, entry.name) not in wanted:
                    _remove_tree(rdir, entry.name)
                    done.append(f"removed {'an unfinished seed' if seeding else 'the data'}"
                                f" of replica {entry.name} in timeline {tdir.name}")
        for line in done:
            logger.warning("replica repair: %s", line)
        return done

    def _timeline_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [Path(e.path) for e in os.scandir(self.root)
                if e.is_dir(follow_symlinks=False) and (Path(e.path) / REPLICAS_DIR).is_dir()]


def _remove_tree(parent: Path, name: str) -> None:
    # Renamed first: a half-removed directory must never look like a usable replica.
    trash = parent / f"{SEEDING_PREFIX}trash-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(parent / name, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)
