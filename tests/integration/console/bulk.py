"""Many branches at once, written straight into Argon's metadata.

Creating 1,000 real branches through the API would clone 1,000 data directories; the
console's tree only reads metadata, so the rows are enough to show how the page copes.
The rows have no timelines on disk: nothing may connect to them, and deleting the
project removes them (deleting a missing timeline is not an error).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import create_engine

from argon.control import ids
from argon.control.context import utcnow
from argon.control.models import BranchState
from argon.meta import tables as t
from tests.fixtures.argon_env import ArgonEnv


def add_metadata_branches(env: ArgonEnv, project_id: str, parent_id: str, n: int) -> list[str]:
    """``n`` ready branches under ``parent_id``: every tenth a child of the parent, the
    others children of the tenth before them (a tree two levels deep). Their ids."""
    engine = create_engine(f"sqlite:///{env.home / 'argon.db'}")
    now = utcnow()
    rows: list[dict[str, object]] = []
    made: list[str] = []
    group_parent = parent_id
    for i in range(n):
        bid = ids.branch_id()
        parent = parent_id if i % 10 == 0 else group_parent
        if i % 10 == 0:
            group_parent = bid
        when = now + timedelta(milliseconds=i)
        rows.append({"id": bid, "project_id": project_id, "timeline_id": ids.timeline_id(),
                     "parent_id": parent, "name": f"bulk-{i:04d}",
                     "state": BranchState.READY.value, "is_default": False,
                     "protected": i % 97 == 0, "init_source": "parent-data",
                     "created_at": when, "updated_at": when})
        made.append(bid)
    with engine.begin() as conn:
        conn.execute(t.branches.insert(), rows)
    engine.dispose()
    return made
