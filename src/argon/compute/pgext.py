"""Argon's preload library (``pgext/argon``) and ``pg_stat_statements`` on every compute.

``scripts/build-pgext.sh`` builds ``argon.so`` into each install's pkglibdir.  When it is
there, computes preload it and members of ``neon_superuser`` may create the extensions
below, create event triggers, and EXPLAIN accepts Neon's FILECACHE option (see
docs/extensions.md).  When it is missing a compute still starts, without those
features, and Argon logs one warning per install.
"""

from __future__ import annotations

import logging
from pathlib import Path

from argon.pg import PgInstall

logger = logging.getLogger(__name__)

LIBRARY = "argon"
# The role whose members get the rights; control/sqlexec.py creates it as Neon does.
PRIVILEGED_ROLE = "neon_superuser"

# What Neon lets neon_superuser create, as far as PostgreSQL's contrib and pgvector go.
# Left out on purpose: file_fdw and adminpack (server files), amcheck, pageinspect,
# pg_surgery, pg_visibility, pg_freespacemap, pg_walinspect, pg_logicalinspect (page
# level and WAL internals), sslinfo, old_snapshot, and every untrusted language.  The
# list is closed under `requires` (earthdistance needs cube), so CASCADE stays inside it.
# A name an install does not ship is harmless: CREATE EXTENSION says it is not available.
ALLOWED_EXTENSIONS: tuple[str, ...] = (
    "autoinc", "bloom", "btree_gin", "btree_gist", "citext", "cube", "dblink", "dict_int",
    "earthdistance", "fuzzystrmatch", "hstore", "insert_username", "intagg", "intarray",
    "isn", "lo", "ltree", "moddatetime", "pg_buffercache", "pg_prewarm",
    "pg_stat_statements", "pg_trgm", "pgcrypto", "pgrowlocks", "pgstattuple", "plpgsql",
    "postgres_fdw", "refint", "seg", "tablefunc", "tcn", "tsm_system_rows",
    "tsm_system_time", "unaccent", "uuid-ossp", "vector", "xml2",
)

_warned: set[Path] = set()


def _has_library(install: PgInstall, name: str) -> bool:
    return (install.pkglibdir / f"{name}.so").is_file()


def library_present(install: PgInstall) -> bool:
    """``argon.so`` is installed for ``install``; warns once per install when it is not."""
    if _has_library(install, LIBRARY):
        return True
    if install.pkglibdir not in _warned:
        _warned.add(install.pkglibdir)
        logger.warning(
            "PostgreSQL %s (%s) has no %s.so: computes start without Argon's extension "
            "(no CREATE EXTENSION or event triggers for the owner role, no EXPLAIN "
            "FILECACHE); run scripts/build-pgext.sh to build it",
            install.full_version, install.pkglibdir, LIBRARY)
    return False


def preload_settings(install: PgInstall) -> dict[str, str]:
    """``shared_preload_libraries`` and the ``argon.*`` settings for a compute."""
    libraries = ["pg_stat_statements"] if _has_library(install, "pg_stat_statements") else []
    out: dict[str, str] = {}
    if library_present(install):
        libraries.append(LIBRARY)
        out["argon.privileged_role"] = PRIVILEGED_ROLE
        out["argon.allowed_extensions"] = ",".join(ALLOWED_EXTENSIONS)
    if libraries:
        out["shared_preload_libraries"] = ",".join(libraries)
    return out
