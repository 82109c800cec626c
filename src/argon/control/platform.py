"""Facts about this install: the single user, the region, what runs (``argon status``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from argon import __version__
from argon.control import regions
from argon.control.context import ControlContext
from argon.meta import tables as t
from argon.pg import discover_installs
from argon.storage.pool_mount import describe as describe_pool

USER_ID = "argon"


class PlatformService:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx

    def user(self) -> dict[str, Any]:
        return {"id": USER_ID, "email": "admin@argon.local", "name": "Argon", "last_name": "",
                "login": "argon", "image": "", "projects_limit": 0, "branches_limit": 0,
                "max_autoscaling_limit": 16, "plan": "self_hosted", "auth_accounts": [],
                "active_seconds_limit": 0, "compute_seconds_limit": 0,
                "billing_account": {"payment_source": {"type": "none"},
                                    "subscription_type": "free_v3", "email": ""}}

    def regions(self) -> list[dict[str, Any]]:
        return regions.listing()

    def status(self) -> dict[str, Any]:
        s = self.ctx.settings
        with self.ctx.tx() as conn:
            projects = conn.execute(select(t.projects.c.id, t.projects.c.name,
                                           t.projects.c.pg_version)).all()
            branches = conn.execute(select(t.branches.c.id, t.branches.c.project_id,
                                           t.branches.c.name, t.branches.c.state,
                                           t.branches.c.is_default)).all()
            endpoints = conn.execute(select(t.endpoints.c.id, t.endpoints.c.branch_id,
                                            t.endpoints.c.state, t.endpoints.c.proxy_port)).all()
        return {
            "version": __version__,
            "home": str(s.home),
            "api_url": f"http://{s.listen_host}:{s.api_port}/api/v2",
            "docs_url": f"http://{s.listen_host}:{s.api_port}/api/v2/docs",
            "postgres_port": s.pg_port,
            "http_port": s.http_port,
            "domain": s.domain,
            "clone_driver": self.ctx.storage.driver.name,
            "storage_pool": pool_status(s.home),
            # with --object-store: the snapshot upload's last pass (backlog, in_sync, ...)
            "snapshot_upload": (sync.status.to_json()
                                if (sync := self.ctx.storage.snapshot_sync) else None),
            "postgres": [{"version": i.full_version, "source": i.source, "bindir": str(i.bindir)}
                         for i in discover_installs()],
            "projects": [{"id": p.id, "name": p.name, "pg_version": p.pg_version,
                          "branches": [{"id": b.id, "name": b.name, "state": b.state,
                                        "default": bool(b.is_default),
                                        "endpoints": [{"id": e.id, "state": e.state,
                                                       "proxy_port": e.proxy_port}
                                                      for e in endpoints if e.branch_id == b.id]}
                                       for b in branches if b.project_id == p.id]}
                         for p in projects],
        }


def pool_status(home: Path) -> dict[str, Any]:
    """The home's storage pool as the kernel sees it now, with the line `argon status`
    prints."""
    pool = describe_pool(home)
    return {**pool.as_dict(), "line": pool.line()}
