"""Facts about Postgres shared by every room: installs, the OS account, LSNs."""

from argon.pg.binaries import PgInstall, choose_install, discover_installs
from argon.pg.lsn import Lsn
from argon.pg.osuser import OsUser, pg_os_user

__all__ = ["Lsn", "OsUser", "PgInstall", "choose_install", "discover_installs", "pg_os_user"]
