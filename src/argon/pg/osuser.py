"""The unprivileged OS account Postgres runs under when Argon runs as root.

Postgres refuses to start as root.  When Argon itself is root (CI, a server install),
every Postgres, PgBouncer and helper binary runs as a dedicated system account and every
file they touch is owned by it.  When Argon is not root, Postgres runs as Argon's user.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from argon.errors import Unavailable

DEFAULT_ACCOUNT = "argon"


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``subprocess.Popen`` to run as this account."""
        if os.geteuid() == self.uid:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def spawn_args(self, argv: list[str]) -> tuple[list[str], dict[str, object]]:
        """``argv`` and ``Popen`` keyword arguments to run it as this account, for the
        processes on a start's critical path (postmaster, PgBouncer).

        Popen's ``user=``/``group=`` change ids between fork and exec, which rules out
        vfork: a full fork of the large, threaded Argon process costs several ms.
        ``setpriv`` (util-linux) drops to the account, with no supplementary groups,
        and execs ``argv`` in place (same pid), so Python can vfork.
        """
        kwargs = self.popen_kwargs()
        setpriv = _setpriv()
        if not kwargs or setpriv is None:
            return argv, kwargs
        return [setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                "--", *argv], {}

    def chown(self, path: Path) -> None:
        if os.geteuid() == 0 and self.uid != 0:
            os.chown(path, self.uid, self.gid, follow_symlinks=False)

    def chown_tree(self, root: Path) -> None:
        if os.geteuid() != 0 or self.uid == 0:
            return
        self.chown(root)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), self.uid, self.gid, follow_symlinks=False)


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")


def pg_os_user(account: str = DEFAULT_ACCOUNT) -> OsUser:
    """The account Postgres runs as; created (as a system account) when Argon is root."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             "--user-group", account],
            capture_output=True, text=True,
        )
        if result.returncode not in (0, 9):  # 9: it appeared meanwhile
            raise Unavailable(
                f"cannot create the unprivileged account {account!r} for Postgres: "
                f"{result.stderr.strip()}; create it by hand or run Argon as a normal user"
            ) from None
        entry = pwd.getpwnam(account)
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
