"""Persistence of the domain: tables, the engine, numbered migrations.

No commits happen here: the calling service owns each transaction.  SQLite is the
default; the engine factory takes any SQLAlchemy URL so a Postgres URL can replace it.
"""

from argon.meta.db import open_database
from argon.meta import tables

__all__ = ["open_database", "tables"]
