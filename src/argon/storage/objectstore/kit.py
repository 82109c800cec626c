"""Setting up WAL archiving to a bucket at ``argon start --object-store``.

Postgres runs the archive and restore commands as its own unprivileged account, in
processes that outlive Argon.  That account may not reach Argon's interpreter or
virtualenv (a root-owned one under ``/root`` is the usual case), so Argon lays out a
*WAL kit* in its home, owned by that account: ``wal_archive.py`` with the few modules it
imports and the ``obstore`` package, in a directory named after the hash of its content
(a running compute keeps the kit its configuration names while a newer Argon adds its
own).  It then finds a Python 3.11+ interpreter the account can execute (Argon's own,
else the system's ``python3``) and proves, as that account, that the kit reaches the
bucket with the credentials file.  Anything missing fails the start with what to do.

Home layout::

    objectstore/credentials     0600, the Postgres account: AWS_* variables
    objectstore/kit-<hash>/     the kit (code only)
    objectstore/status/         the archiver's outcome per timeline (kit writes, Argon reads)
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from argon.pg import OsUser
from argon.storage.objectstore.bucket import Bucket, bucket_env
from argon.storage.objectstore.errors import ObjectStoreError
from argon.storage.objectstore.wal_commands import (
    ARCHIVE_ENTRY,
    DEFAULT_ARCHIVE_TIMEOUT,
    BucketWal,
)

logger = logging.getLogger(__name__)

_SRC = Path(__file__).resolve().parents[3]   # the directory holding the argon package
# What wal_archive.py imports, relative to _SRC (argon/storage/__init__.py is replaced by
# a stub: the real one imports all of storage, psycopg included).
KIT_MODULES = (
    "argon/__init__.py",
    "argon/errors.py",
    "argon/storage/durability.py",
    "argon/storage/objectstore/__init__.py",
    "argon/storage/objectstore/errors.py",
    "argon/storage/objectstore/bucket.py",
    "argon/storage/objectstore/wal_commands.py",
    "argon/storage/objectstore/wal_archive.py",
)
_STORAGE_STUB = '"""The WAL kit holds only the object-store client of argon.storage."""\n'
_LAUNCHER = '''"""Argon's WAL kit: archive_command / restore_command for the bucket."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves it off
from argon.storage.objectstore.wal_archive import main  # noqa: E402

sys.exit(main())
'''
_PROBE_TIMEOUT = 60.0


def prepare_bucket_wal(home: Path, url: str, owner: OsUser,
                       env: Mapping[str, str] | None = None) -> BucketWal:
    """Check the bucket, lay out credentials, kit and status directory; the commands'
    settings.  Raises ``ObjectStoreError`` saying what to check."""
    bucket = Bucket(url, env)
    try:
        bucket.check()
    except ObjectStoreError as exc:
        logger.warning("object store %s: %s (%s)", url, exc.message, exc.detail or exc.kind)
        raise ObjectStoreError(
            f"--object-store {url}: {exc.message}. Argon reads the endpoint, region and "
            "credentials from AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3), AWS_REGION, "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; the bucket must exist",
            kind=exc.kind, detail=exc.detail) from None
    top = home / "objectstore"
    top.mkdir(mode=0o711, exist_ok=True)
    os.chmod(top, 0o711)
    credentials = top / "credentials"
    _write_owned(credentials, "".join(f"{k}={v}\n" for k, v in bucket_env(env).items()), owner)
    status_dir = top / "status"
    status_dir.mkdir(mode=0o700, exist_ok=True)
    owner.chown(status_dir)
    kit = build_kit(top, owner)
    python = choose_python(kit, owner)
    bw = BucketWal(url=url, python=python, kit=kit, credentials=credentials,
                   status_dir=status_dir, archive_timeout=_archive_timeout(env))
    probe = _run_as(owner, [str(python), "-I", "-S", str(kit / ARCHIVE_ENTRY), "check",
                            "--url", url, "--credentials", str(credentials)])
    if probe.returncode != 0:
        raise ObjectStoreError(
            f"--object-store {url}: Argon reaches the bucket, but the Postgres account "
            f"{owner.name!r} (which runs the archive command) does not: "
            f"{probe.stderr.strip() or 'exit ' + str(probe.returncode)}", kind="unreachable")
    logger.info("WAL goes to %s (%s) and each timeline's local wal/ (kit %s, %s)",
                url, bucket.where(), kit.name, python)
    return bw


def _archive_timeout(env: Mapping[str, str] | None) -> int:
    raw = (os.environ if env is None else env).get("ARGON_WAL_ARCHIVE_TIMEOUT", "")
    if not raw:
        return DEFAULT_ARCHIVE_TIMEOUT
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ObjectStoreError(f"ARGON_WAL_ARCHIVE_TIMEOUT must be a whole number of seconds "
                               f"(0: off), not {raw!r}", kind="config")
    return value


def build_kit(top: Path, owner: OsUser) -> Path:
    """The kit for this Argon's code and obstore, made once (temp dir, rename)."""
    import obstore

    lib = Path(obstore.__file__).resolve().parent
    lib_files = sorted(p for p in lib.rglob("*") if p.is_file() and _kit_file(p))
    digest = hashlib.sha256()
    for rel in KIT_MODULES:
        digest.update(rel.encode() + b"\0" + (_SRC / rel).read_bytes())
    for p in lib_files:
        st = p.stat()
        digest.update(f"{p.relative_to(lib)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    digest.update(_LAUNCHER.encode())
    kit = top / f"kit-{digest.hexdigest()[:12]}"
    if (kit / ARCHIVE_ENTRY).is_file():
        return kit
    tmp = top / f".{kit.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel in KIT_MODULES:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_SRC / rel, tmp / rel)
        (tmp / "argon/storage/__init__.py").write_text(_STORAGE_STUB)
        for p in lib_files:
            dest = tmp / "obstore" / p.relative_to(lib)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest)
        (tmp / ARCHIVE_ENTRY).write_text(_LAUNCHER)
        for dirpath, dirnames, filenames in os.walk(tmp):
            os.chmod(dirpath, 0o700)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o600)
        owner.chown_tree(tmp)
        os.rename(tmp, kit)
    except FileExistsError:
        shutil.rmtree(tmp, ignore_errors=True)   # another start made it meanwhile
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return kit


def _kit_file(p: Path) -> bool:
    return "__pycache__" not in p.parts and p.suffix not in (".pyi",) and p.name != "fsspec.py"


def choose_python(kit: Path, owner: OsUser) -> Path:
    """A Python 3.11+ the Postgres account can run and that loads the kit's obstore."""
    candidates: list[str] = []
    for c in (sys.executable, os.path.realpath(sys.executable), "/usr/bin/python3",
              "/usr/local/bin/python3", shutil.which("python3") or ""):
        if c and c not in candidates:
            candidates.append(c)
    probe = (f"import sys; sys.path.insert(0, {str(kit)!r}); "
             "assert sys.version_info >= (3, 11); import argon.storage.objectstore.bucket")
    tried = []
    for c in candidates:
        if not os.path.isfile(c):
            continue
        result = _run_as(owner, [c, "-I", "-S", "-c", probe])
        if result.returncode == 0:
            return Path(c)
        tried.append(f"{c}: {(result.stderr.strip().splitlines() or ['exit ' + str(result.returncode)])[-1]}")
    raise ObjectStoreError(
        f"no Python 3.11+ interpreter that the Postgres account {owner.name!r} can run "
        f"(its archive command needs one): tried {'; '.join(tried) or 'none found'}. "
        "Install python3 (3.11 or later) system-wide, e.g. `apt-get install python3`",
        kind="config")


def _run_as(owner: OsUser, argv: list[str]) -> subprocess.CompletedProcess[str]:
    # The environment a compute's archiver has: no AWS variables, no PYTHON* (-I anyway).
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/",
                              timeout=_PROBE_TIMEOUT, **owner.popen_kwargs())  # type: ignore[call-overload]
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(argv, 1, "", str(exc))


def _write_owned(path: Path, text: str, owner: OsUser) -> None:
    """Atomically, 0600, owned by the Postgres account (it reads it; nobody else may)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    owner.chown(tmp)
    os.rename(tmp, path)

