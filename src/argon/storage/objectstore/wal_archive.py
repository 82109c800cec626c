"""Postgres' archive_command and restore_command for a bucket: ``push`` and ``fetch``.

Runs in a fresh interpreter per WAL file, as the Postgres account, from the WAL kit
(``kit.py``), started by the compute's archiver or startup process, never by Argon: a
compute that outlives Argon keeps archiving.  Reads the AWS variables from a 0600
credentials file, never from postgresql.conf or the command line.

``push %p %f``: the file goes into the timeline's local archive (temp, fsync, rename) and
then into the bucket (one conditional PUT that fails if the key exists, checksummed); exit
0 only once both hold it.  A key that already holds identical bytes counts as done
(Postgres re-archives after a crash), other bytes are refused: that is a second writer
on the same timeline, and overwriting would destroy history.  Each run records its
outcome in ``<status-dir>/<timeline>.json`` for Argon's metrics and log.

``fetch %f %p dir...``: the local archives were already searched by the shell; try the
same timelines' prefixes in the bucket, nearest first, and put what was found back into
that timeline's local archive (the cache).  Exit 1 when no copy is found or
the bucket cannot be reached (Postgres then treats the file as absent: recovery ends at
what it has, and a recovery target not reached yet is a fatal error, not a silent loss).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from argon.storage.objectstore.errors import ObjectStoreError
from argon.storage.objectstore.wal_commands import timeline_of, wal_key

_CHUNK = 1024 * 1024


def read_credentials(path: Path) -> dict[str, str]:
    """``NAME=value`` lines (the AWS variables) from the 0600 credentials file."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            env[name.strip()] = value
    return env


def _bucket(url: str, credentials: Path):  # -> Bucket (imported late: obstore is the cost)
    from argon.storage.objectstore.bucket import Bucket

    return Bucket(url, read_credentials(credentials))


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def copy_to_local_archive(src: Path, archive_dir: Path, name: str) -> None:
    """basic_archive's rule: identical copy present is success, a different one fails."""
    dest = archive_dir / name
    if dest.exists():
        if _digest(dest) == _digest(src):
            return
        raise ObjectStoreError(f"{dest} exists with other content; refusing to overwrite it",
                               kind="conflict")
    tmp = archive_dir / f".{name}.{os.getpid()}.tmp"
    try:
        with src.open("rb") as fin, open(tmp, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        os.rename(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(archive_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def push_to_bucket(bucket, key: str, src: Path) -> str:
    """Upload unless present; ``"uploaded"`` or ``"present"`` (identical bytes)."""
    try:
        bucket.put_file(key, src, create_only=True)
        return "uploaded"
    except ObjectStoreError as exc:
        if exc.kind != "conflict":
            raise
    held = bucket.get_bytes(key)
    if hashlib.sha256(held).hexdigest() == _digest(src):
        return "present"
    raise ObjectStoreError(
        f"{bucket.url}/{key} already holds other content than {src.name}: another Postgres "
        "archives to this timeline's prefix; refusing to overwrite it", kind="conflict")


def _record(status_dir: Path | None, timeline: str, name: str, error: str | None) -> None:
    """The archiver's last outcome, for Argon's /metrics and log (advisory: no fsync)."""
    if status_dir is None:
        return
    path = status_dir / f"{timeline}.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        state = {}
    now = time.time()
    if error is None:
        state.update(last_success_time=now, last_success_wal=name, consecutive_failures=0)
    else:
        state.update(last_failure_time=now, last_failure_wal=name, last_error=error,
                     consecutive_failures=int(state.get("consecutive_failures", 0)) + 1,
                     failures_total=int(state.get("failures_total", 0)) + 1)
    tmp = status_dir / f".{timeline}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(state))
        os.rename(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def push(url: str, credentials: Path, archive_dir: Path, status_dir: Path | None,
         path: Path, name: str) -> int:
    timeline = timeline_of(archive_dir)
    try:
        copy_to_local_archive(path, archive_dir, name)
        outcome = push_to_bucket(_bucket(url, credentials), wal_key(timeline, name), path)
    except (ObjectStoreError, OSError) as exc:
        text = exc.message if isinstance(exc, ObjectStoreError) else f"{type(exc).__name__}: {exc}"
        _record(status_dir, timeline, name, text)
        # stderr goes to the compute's log, beside Postgres' "archive command failed".
        print(f"argon wal push: {name} of timeline {timeline} not archived: {text}",
              file=sys.stderr)
        return 1
    _record(status_dir, timeline, name, None)
    if outcome == "present":
        print(f"argon wal push: {name} was already in the bucket with the same content",
              file=sys.stderr)
    return 0


def fetch(url: str, credentials: Path, name: str, dest: Path, dirs: Sequence[Path]) -> int:
    try:
        bucket = _bucket(url, credentials)
        for d in dirs:
            key = wal_key(timeline_of(d), name)
            try:
                bucket.get_file(key, dest)
            except ObjectStoreError as exc:
                if exc.kind != "not_found":
                    raise
                continue
            _refill_cache(dest, d, name)
            return 0
    except ObjectStoreError as exc:
        print(f"argon wal fetch: {name}: {exc.message}", file=sys.stderr)
    return 1


def _refill_cache(fetched: Path, archive_dir: Path, name: str) -> None:
    """Put the fetched file back into the local archive it was missing from (the cache
    the next branch reads first); the local GC removes it again by its own rules."""
    if not archive_dir.is_dir():
        return
    try:
        copy_to_local_archive(fetched, archive_dir, name)
    except (ObjectStoreError, OSError) as exc:
        print(f"argon wal fetch: {name} not cached in {archive_dir}: {exc}", file=sys.stderr)


def check(url: str, credentials: Path) -> int:
    """Argon's start-up probe, run as the Postgres account: can the archiver reach it?"""
    try:
        _bucket(url, credentials).check()
    except ObjectStoreError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot read {credentials}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wal_archive")
    sub = parser.add_subparsers(dest="verb", required=True)
    for verb in ("push", "fetch", "check"):
        p = sub.add_parser(verb)
        p.add_argument("--url", required=True)
        p.add_argument("--credentials", type=Path, required=True)
        if verb == "push":
            p.add_argument("--archive-dir", type=Path, required=True)
            p.add_argument("--status-dir", type=Path)
            p.add_argument("path", type=Path)
            p.add_argument("name")
        elif verb == "fetch":
            p.add_argument("name")
            p.add_argument("dest", type=Path)
            p.add_argument("dirs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.verb == "push":
        return push(args.url, args.credentials, args.archive_dir, args.status_dir,
                    args.path, args.name)
    if args.verb == "fetch":
        return fetch(args.url, args.credentials, args.name, args.dest, args.dirs)
    return check(args.url, args.credentials)


if __name__ == "__main__":
    sys.exit(main())
