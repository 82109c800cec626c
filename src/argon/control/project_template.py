"""New projects cloned from a ready, initdb'd template instead of running initdb each time.

initdb costs about a second here (bootstrap mode, the catalogs, then an fsync of every
file); a reflink clone of its result costs a few milliseconds.  One template per
Postgres build (and per version of the initdb options below) lives next to the
timelines, on the same filesystem, so the storage's clone driver can share its extents.

What a project shares with the template, and what is its own:

- shared: the initial catalogs (the same OIDs, encoding UTF8, locale C.UTF-8, 1 MiB WAL
  segments: what initdb would have produced anyway) and an empty first database, made
  in the template by ``CREATE DATABASE`` and renamed to the project's database name and
  given to its owner at creation (``bootstrap``);
- its own: the system identifier and the mock-authentication nonce in ``pg_control``
  (both rewritten here, with the control file's CRC, and the identifier in every WAL
  segment's long page header), cloud_admin's password (the template has none: the
  first start sets the project's, see ``compute.admin_auth``), and the owner role, its
  password and the database (made per project by ``sqlexec.bootstrap``).

With a byte-copy driver a clone is ~1000 new files, and a new inode can cost more than
its bytes (~0.8 ms each on this machine's ext4: 0.9 s per clone).  So one spare clone
per template is made ahead, in the background, and a new project takes it with one
rename; the project's first snapshot links the template's unchanged files
(``Storage.init_timeline``).  Reflinks are cheap enough to need neither.

Crash safety: a template is built in a temporary directory and renamed into place only
once initdb (which fsyncs its output) has finished, so a half-built template is never
used; a spare likewise is built under a ``.build-`` name, synced, then renamed, and a
build cut short is removed by the next one; a project's clone and its first snapshot
are made durable with one ``syncfs`` (``Storage.init_timeline``) before the timeline's
manifest says READY, and an interrupted clone leaves a timeline storage discards.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path

import psycopg
from psycopg import sql

from argon.compute import initdb
from argon.compute.pidfile import alive
from argon.compute.process import child_env
from argon.control import sqlexec
from argon.errors import ArgonError, Conflict
from argon.pg import Lsn, OsUser, PgInstall
from argon.storage.drivers import CloneDriver
from argon.storage.tree import CloneRules, clone_tree
from argon.storage.wal import is_segment_name, read_control_file, segments_between
from argon.storage.durability import fsync_dir, syncfs

logger = logging.getLogger(__name__)

# Bump when compute.initdb's options or the template's contents change: an old template
# must not be reused.
TEMPLATE_FORMAT = 2
# Clones made ahead for the next projects (byte-copy driver only), per template.
SPARES = 1
SPARES_DIR = ".spares"
# The project's first database, made once in the template (CREATE DATABASE copies
# template1 through the WAL: ~0.1 s per project); renamed and given to the owner.
TEMPLATE_DATABASE = "neondb"
CONTROL_FILE = Path("global") / "pg_control"
_NONCE_LEN = 32
# XLogPageHeaderData is 24 bytes; XLogLongPageHeaderData adds xlp_sysid right after it.
_WAL_SYSID_OFFSET = 24
_SYSID = struct.Struct("@Q")
_CHECKPOINT_RECORD_MAX = 512   # a shutdown checkpoint record ends within this
# system_identifier, pg_control_version, catalog_version_no, state, then time (pg_time_t,
# 8-aligned): the head storage.wal reads too
_CONTROL_TIME_OFFSET = 24


def templates_root(timelines: Path) -> Path:
    """Next to the timelines on their filesystem: inside them when they are a mount of
    their own (the storage pool), so reflinks reach the templates; the dot keeps the
    storage's repair away."""
    return timelines / ".templates" if os.path.ismount(timelines) else \
        timelines.parent / "templates"


class TemplateError(ArgonError):
    """The template's control file is not one this code knows how to re-identify."""


class ProjectTemplates:
    """Builds (once) and clones the per-version template data directory."""

    def __init__(self, root: Path, driver: CloneDriver, owner: OsUser) -> None:
        self.root = root
        self.driver = driver
        self.owner = owner
        # a reflink clone costs milliseconds: spares only for byte copies
        self.spares = driver.name == "copy"
        self._lock = threading.Lock()
        self._refilling = threading.Lock()
        self._cleaned = False

    def template_dir(self, install: PgInstall) -> Path:
        return self.root / f"pg{install.full_version}-f{TEMPLATE_FORMAT}"

    def ensure(self, install: PgInstall) -> Path:
        """The ready template for ``install``, built now if there is none yet."""
        final = self.template_dir(install)
        if final.is_dir():
            return final
        with self._lock:
            if final.is_dir():
                return final
            self.root.mkdir(mode=0o711, parents=True, exist_ok=True)
            self.root.chmod(0o711)   # the Postgres account runs initdb in here
            for stale in self.root.glob(f".build-{final.name}-*"):
                shutil.rmtree(stale, ignore_errors=True)   # a build cut short by a crash
            tmp = self.root / f".build-{final.name}-{os.getpid()}-{secrets.token_hex(4)}"
            try:
                initdb(install, tmp, self.owner)   # fsyncs everything it wrote
                _create_database(install, tmp, self.owner)
                _drop_spare_wal(tmp)
                syncfs(tmp)
                os.rename(tmp, final)
                fsync_dir(self.root)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            logger.info("built the project template %s", final)
        return final

    def fill(self, install: PgInstall, pgdata: Path) -> Path:
        """Make the empty ``pgdata`` a fresh cluster of its own, cloned from the template
        (or a spare clone of it); returns the template."""
        template = self.ensure(install)
        os.rmdir(pgdata)   # the clone makes it, with the template's mode and owner
        spare = self._take_spare(template, pgdata)
        if not spare:
            self._clone(template, pgdata)
        sysid = new_identity(pgdata, install.version)
        # made durable, with the timeline's first snapshot, by storage before READY
        logger.info("%s project data directory %s from %s (system identifier %d)",
                    "took the spare" if spare else "cloned", pgdata, template.name, sysid)
        return template

    def refill(self, install: PgInstall) -> None:
        """Make the spare clones the next projects take, in the background (called once
        a project is made, so that its own clone does not compete with this one)."""
        template = self.template_dir(install)
        if self.spares and template.is_dir():
            self._refill(template)

    def _clone(self, template: Path, pgdata: Path) -> None:
        # pg_wal: only the segments holding the shutdown checkpoint, not initdb's
        # recycled ones (a copy driver would copy them all)
        clone_tree(template, pgdata, self.driver, self.owner, CloneRules())
        facts = read_control_file(template)
        seg_size = _segment_size(template / "pg_wal")
        last = Lsn(facts.checkpoint + _CHECKPOINT_RECORD_MAX)
        for name in segments_between(facts.timeline, facts.redo, last, seg_size):
            src = template / "pg_wal" / name
            if src.is_file():
                dst = pgdata / "pg_wal" / name
                self.driver.clone_file(src, dst)
                os.chmod(dst, 0o600)
                self.owner.chown(dst)

    # -- spares: clones made ahead (byte-copy driver) --------------------------------------

    def _spares(self, template: Path) -> list[Path]:
        try:
            return sorted(p for p in (self.root / SPARES_DIR).glob(f"{template.name}-*")
                          if p.is_dir())
        except OSError:
            return []

    def _take_spare(self, template: Path, pgdata: Path) -> bool:
        """Rename a ready spare clone of ``template`` to ``pgdata`` (which must not
        exist); False when there is none (or another project took the last one)."""
        if not self.spares:
            return False
        for spare in self._spares(template):
            try:
                os.rename(spare, pgdata)
            except FileNotFoundError:
                continue   # taken by a concurrent project creation
            except OSError as exc:   # e.g. EXDEV: the timelines moved to another mount
                logger.warning("cannot use the spare clone %s (%s); cloning instead",
                               spare, exc)
                self.spares = False
                return False
            fsync_dir(spare.parent)
            return True
        return False

    def _refill(self, template: Path) -> None:
        """Make spare clones of ``template`` in the background, up to ``SPARES``."""
        if len(self._spares(template)) < SPARES and self._refilling.acquire(blocking=False):
            threading.Thread(target=self._refill_now, args=(template,),
                             name="argon-template-spares", daemon=True).start()

    def _refill_now(self, template: Path) -> None:
        try:
            spares = self.root / SPARES_DIR
            spares.mkdir(mode=0o700, exist_ok=True)
            if not self._cleaned:
                self._cleaned = True
                _remove_stale_spares(spares, self.root)
            while self.spares and len(self._spares(template)) < SPARES:
                token = secrets.token_hex(4)
                build = spares / f".build-{os.getpid()}-{template.name}-{token}"
                try:
                    self._clone(template, build)
                    syncfs(build)
                    os.rename(build, spares / f"{template.name}-{token}")
                    fsync_dir(spares)
                except BaseException:
                    shutil.rmtree(build, ignore_errors=True)
                    raise
        except Exception as exc:  # noqa: BLE001 - the next project clones inline instead
            logger.warning("could not make a spare clone of %s: %s", template.name, exc)
        finally:
            self._refilling.release()


def _remove_stale_spares(spares: Path, root: Path) -> None:
    """Builds cut short by a crash (their process is gone, or had this process's pid:
    this runs before this process builds any), and spares of templates that are no
    more (a new template format).  Another live Argon's build on this home is kept."""
    for entry in spares.iterdir():
        if entry.name.startswith(".build-"):
            pid = entry.name.split("-")[1]
            if pid.isdigit() and (int(pid) == os.getpid() or not alive(int(pid))):
                shutil.rmtree(entry, ignore_errors=True)
        elif not (root / entry.name.rsplit("-", 1)[0]).is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def bootstrap(conn: psycopg.Connection, pg_major: int, owner: str, verifier: str,
              database: str) -> None:
    """``sqlexec.bootstrap`` for a data directory cloned from the template: the roles are
    made, the template's database becomes ``database``, owned by ``owner``."""
    has_template_db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                   [TEMPLATE_DATABASE]).fetchone() is not None
    if not has_template_db:   # a data directory from elsewhere: the slow path
        sqlexec.bootstrap(conn, pg_major, owner, verifier, database)
        return
    try:
        with conn.transaction():   # one commit (one WAL flush) instead of four
            sqlexec.bootstrap_roles(conn, pg_major, owner, verifier)
            if database != TEMPLATE_DATABASE:
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(TEMPLATE_DATABASE), sql.Identifier(database)))
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(database), sql.Identifier(owner)))
    except psycopg.errors.DuplicateDatabase:
        raise Conflict(f"database {database!r} already exists") from None


def _create_database(install: PgInstall, pgdata: Path, owner: OsUser) -> None:
    """The first database, made in single-user mode (no server, no socket); its exit
    writes a shutdown checkpoint, so the template stays cleanly shut down."""
    result = subprocess.run(  # type: ignore[call-overload]
        [install.bin("postgres"), "--single", "-D", str(pgdata), "-c", "exit_on_error=true",
         "template1"], input=f"CREATE DATABASE {TEMPLATE_DATABASE}\n", capture_output=True,
        text=True, env=child_env(), check=False, **owner.popen_kwargs())
    if result.returncode != 0:
        raise TemplateError(f"creating the template's database failed (exit "
                            f"{result.returncode}): {result.stderr.strip()[-2000:]}")


def _drop_spare_wal(pgdata: Path) -> None:
    """Keep only the segments holding the shutdown checkpoint: the rest are recycled
    ones a cleanly shut down cluster never reads (a template is kept for good, and on a
    copy driver every megabyte of it is paid again per project)."""
    facts = read_control_file(pgdata)
    wal = pgdata / "pg_wal"
    keep = set(segments_between(facts.timeline, facts.redo,
                                Lsn(facts.checkpoint + _CHECKPOINT_RECORD_MAX),
                                _segment_size(wal)))
    for entry in os.scandir(wal):
        if is_segment_name(entry.name) and entry.name not in keep:
            os.unlink(entry.path)


def new_identity(pgdata: Path, pg_major: int) -> int:
    """Give ``pgdata`` (a stopped, cleanly shut down clone) its own system identifier and
    mock-authentication nonce; returns the new identifier.

    The identifier is built as Postgres builds it (seconds in the high half), with
    random low bits so two projects made in the same second differ.
    """
    path = pgdata / CONTROL_FILE
    data = bytearray(path.read_bytes())
    old = _SYSID.unpack_from(data, 0)[0]
    crc_at = _crc_offset(data)
    sysid = (int(time.time()) << 32) | secrets.randbits(32)
    _SYSID.pack_into(data, 0, sysid)
    # pg_control's "last updated" time dates the project's first snapshot (its history
    # starts now, not when the template was built)
    struct.pack_into("@q", data, _CONTROL_TIME_OFFSET, int(time.time()))
    # 18 added a bool (default_char_signedness) before the nonce: 3 bytes of padding
    # then separate the nonce from the CRC.
    nonce_end = crc_at - 3 if pg_major >= 18 else crc_at
    data[nonce_end - _NONCE_LEN:nonce_end] = secrets.token_bytes(_NONCE_LEN)
    struct.pack_into("@I", data, crc_at, crc32c(bytes(data[:crc_at])))
    _rewrite_in_place(path, bytes(data))
    for seg in sorted((pgdata / "pg_wal").iterdir()):
        if seg.is_file() and is_segment_name(seg.name):
            _patch_wal_sysid(seg, old, sysid)
    return sysid


def _segment_size(wal_dir: Path) -> int:
    for entry in os.scandir(wal_dir):
        if is_segment_name(entry.name) and entry.is_file():
            return entry.stat().st_size
    raise TemplateError(f"{wal_dir} holds no WAL segment; remove the template, the next "
                        "project builds a new one")


def _crc_offset(data: bytearray) -> int:
    """Where ControlFileData's CRC sits: the first 4-aligned offset whose stored value is
    the CRC-32C of everything before it (the layout varies by major version)."""
    crc = 0xFFFFFFFF
    table = _crc_table()
    for i in range(len(data) - 4):
        if i % 4 == 0 and i >= 64 and (crc ^ 0xFFFFFFFF) == struct.unpack_from("@I", data, i)[0]:
            return i
        crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8)
    raise TemplateError("the template's pg_control has no valid CRC; rebuild the template "
                        "(remove it, the next project builds a new one)")


def _patch_wal_sysid(seg: Path, old: int, new: int) -> None:
    """A segment's first page carries the identifier; recovery refuses a mismatch."""
    fd = os.open(seg, os.O_RDWR | os.O_CLOEXEC)
    try:
        if _SYSID.unpack(os.pread(fd, 8, _WAL_SYSID_OFFSET))[0] == old:
            os.pwrite(fd, _SYSID.pack(new), _WAL_SYSID_OFFSET)
    finally:
        os.close(fd)


def _rewrite_in_place(path: Path, data: bytes) -> None:
    # pg_control is rewritten in place by Postgres too (it fits one sector)
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


@functools.cache
def _crc_table() -> tuple[int, ...]:
    out = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        out.append(c)
    return tuple(out)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as Postgres' ``pg_crc32c``."""
    crc = 0xFFFFFFFF
    table = _crc_table()
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


