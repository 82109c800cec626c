"""Which database branch a new connection goes to, as Neon Local decides it.

* ``BRANCH_ID``: that branch; nothing is created or deleted.
* otherwise a child of ``PARENT_BRANCH_ID`` (default: the project's default branch):
  - ``DELETE_BRANCH=true`` (default): one ephemeral child, deleted on stop;
  - ``DELETE_BRANCH=false`` with a git HEAD: one branch per git branch, named after it,
    created on first use and kept; HEAD is read for every new connection;
  - ``DELETE_BRANCH=false`` without git: one kept child, reused on restart.

Ephemeral branches are named ``argon-local-ephemeral-...`` and recorded in
``<state dir>/ephemeral_branch.json`` before anything else happens to them, so a door that
crashed leaves at most that one branch, which the next start in the same state directory
deletes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from argon.errors import ArgonError
from argon.local.api import ArgonApi, ArgonApiError
from argon.local.git_head import current_branch

logger = logging.getLogger(__name__)

EPHEMERAL_PREFIX = "argon-local-ephemeral-"
EPHEMERAL_FILE = "ephemeral_branch.json"
KEPT_FILE = "branches.json"


@dataclass(frozen=True)
class Upstream:
    """Where one branch's connections go: its endpoint behind Argon's proxy, as its
    database owner (the role and password the API's connection string gives)."""

    branch_id: str
    branch_name: str
    endpoint_id: str
    host: str
    port: int
    role: str
    password: str
    verify_tls: bool

    def uri(self, dbname: str) -> str:
        return (f"postgresql://{quote(self.role, safe='')}:{quote(self.password, safe='')}"
                f"@{self.host}:{self.port}/{quote(dbname, safe='')}?sslmode=require"
                f"&options=endpoint%3D{self.endpoint_id}")


@dataclass(frozen=True)
class LocalConfig:
    project_id: str | None
    branch_id: str | None
    parent_branch_id: str | None
    delete_branch: bool
    git_head: Path | None          # the HEAD file when git mode may apply
    state_dir: Path

    @property
    def mode(self) -> str:
        if self.branch_id:
            return "branch"
        if self.delete_branch:
            return "ephemeral"
        return "git" if self.git_head is not None and self.git_head.exists() else "kept"


class BranchSelector:
    def __init__(self, api: ArgonApi, config: LocalConfig) -> None:
        self.api, self.config = api, config
        self.project_id = ""
        self._fixed: Upstream | None = None
        self._by_name: dict[str, Upstream] = {}
        self._lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.project_id = self.config.project_id or await self.api.only_project()
        await self.cleanup_leftover()
        mode = self.config.mode
        if mode == "branch":
            assert self.config.branch_id is not None
            branch = await self._find(self.config.branch_id)
            if branch is None:
                raise ArgonError(f"branch {self.config.branch_id!r} not found in project "
                                 f"{self.project_id}")
            self._fixed = await self.upstream(branch)
        elif mode == "ephemeral":
            self._fixed = await self._create_ephemeral()
        elif mode == "kept":
            self._fixed = await self._kept("argon-local-" + socket.gethostname().lower())
        else:
            await self.target()        # create/reuse the current git branch's one now

    async def stop(self) -> None:
        """Delete the ephemeral branch (if this door made one and may delete it)."""
        if self.config.mode == "ephemeral":
            await self._delete_recorded()

    async def cleanup_leftover(self) -> None:
        """A crashed door's ephemeral branch (recorded in the state directory) goes now."""
        if (self.config.state_dir / EPHEMERAL_FILE).exists():
            logger.warning("deleting the ephemeral branch a previous 'argon local' left")
            await self._delete_recorded()

    # -- choosing ------------------------------------------------------------------------
    async def target(self) -> Upstream:
        """The branch a new connection goes to now."""
        if self._fixed is not None:
            return self._fixed
        assert self.config.git_head is not None
        return await self._kept(current_branch(self.config.git_head))

    @property
    def describe(self) -> str:
        if self._fixed is not None:
            return f"branch {self._fixed.branch_name} ({self._fixed.branch_id})"
        return f"the git branch's database branch (HEAD: {self.config.git_head})"

    async def _kept(self, name: str) -> Upstream:
        async with self._lock:
            if name in self._by_name:
                return self._by_name[name]
            branch = await self._find(name)
            if branch is None:
                logger.info("creating database branch %s", name)
                branch = await self._create(name)
            up = await self.upstream(branch)
            self._by_name[name] = up
            self._remember(name, up.branch_id)
            return up

    async def _find(self, ref: str) -> dict[str, Any] | None:
        for b in await self.api.branches(self.project_id):
            if ref in (b["id"], b["name"]):
                return b
        return None

    async def _parent_id(self) -> str:
        branches = await self.api.branches(self.project_id)
        ref = self.config.parent_branch_id
        for b in branches:
            if (ref is None and b.get("default")) or ref in (b["id"], b["name"]):
                return str(b["id"])
        raise ArgonError(f"parent branch {ref!r} not found in project {self.project_id}"
                         if ref else f"project {self.project_id} has no default branch")

    async def _create(self, name: str, *, on_created: Any = None) -> dict[str, Any]:
        body = {"branch": {"name": name, "parent_id": await self._parent_id()},
                "endpoints": [{"type": "read_write"}]}
        data = await self.api.call("POST", "projects", self.project_id, "branches", json=body)
        if on_created is not None:
            on_created(data["branch"])
        await self.api.wait_operations(self.project_id, data.get("operations", []))
        return dict(data["branch"])

    async def _create_ephemeral(self) -> Upstream:
        name = f"{EPHEMERAL_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"

        def record(branch: dict[str, Any]) -> None:
            _write_json(self.config.state_dir / EPHEMERAL_FILE,
                        {"project_id": self.project_id, "branch_id": branch["id"],
                         "name": branch["name"]})

        return await self.upstream(await self._create(name, on_created=record))

    async def _delete_recorded(self) -> None:
        path = self.config.state_dir / EPHEMERAL_FILE
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        try:
            data = await self.api.call("DELETE", "projects", rec["project_id"], "branches",
                                       rec["branch_id"])
            await self.api.wait_operations(rec["project_id"], data.get("operations", []))
            logger.info("deleted ephemeral branch %s", rec["branch_id"])
        except ArgonApiError as e:
            if e.status != 404:
                raise
        path.unlink(missing_ok=True)

    def _remember(self, name: str, branch_id: str) -> None:
        """``.neon_local/branches.json``: git branch -> database branch, for people."""
        path = self.config.state_dir / KEPT_FILE
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
        known[name] = branch_id
        _write_json(path, known)

    # -- the branch's way in -------------------------------------------------------------
    async def upstream(self, branch: dict[str, Any]) -> Upstream:
        pid, bid = self.project_id, str(branch["id"])
        endpoints = (await self.api.call("GET", "projects", pid, "branches", bid,
                                         "endpoints"))["endpoints"]
        rw = [e for e in endpoints if e.get("type") == "read_write"]
        if not rw:
            raise ArgonError(f"branch {branch['name']} has no read_write compute endpoint: "
                             "add one (argon endpoints create) or choose another branch")
        dbs = (await self.api.call("GET", "projects", pid, "branches", bid,
                                   "databases"))["databases"]
        if not dbs:
            raise ArgonError(f"branch {branch['name']} has no database")
        db = next((d for d in dbs if d["name"] == "neondb"), dbs[0])
        uri = (await self.api.call("GET", "projects", pid, "connection_uri", params={
            "branch_id": bid, "endpoint_id": rw[0]["id"], "database_name": db["name"],
            "role_name": db["owner_name"]}))["uri"]
        url = urlsplit(uri)
        sslmode = parse_qs(url.query).get("sslmode", ["require"])[0]
        return Upstream(bid, str(branch["name"]), str(rw[0]["id"]), url.hostname or "",
                        url.port or 5432, db["owner_name"], unquote(url.password or ""),
                        sslmode in ("verify-ca", "verify-full"))


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
