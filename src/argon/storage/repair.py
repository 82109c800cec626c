"""Start-up repair planning: which directories under the storage root must go, and why.

Pure: the caller lists the root (directory name -> manifest state, or None when the
manifest is missing or unreadable) and executes the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from argon.storage.manifest import TimelineState

TRASH_PREFIX = ".trash-"   # a timeline being deleted is first renamed to this


@dataclass(frozen=True)
class RepairAction:
    name: str        # directory name under the storage root
    sentence: str    # what was done, for the operator


def plan_repair(found: Mapping[str, TimelineState | None],
                known_ids: set[str]) -> list[RepairAction]:
    actions: list[RepairAction] = []
    for name in sorted(found):
        state = found[name]
        if name.startswith(TRASH_PREFIX):
            tl = name[len(TRASH_PREFIX):].rsplit(".", 1)[0]
            actions.append(RepairAction(name, f"finished deleting timeline {tl}"))
        elif name.startswith("."):
            continue  # not a timeline (temporary files of other tools)
        elif state is None:
            actions.append(RepairAction(
                name, f"removed timeline directory {name}: it has no readable manifest"))
        elif state is TimelineState.CREATING:
            actions.append(RepairAction(name, f"removed half-made timeline {name}"))
        elif name not in known_ids:
            actions.append(RepairAction(
                name, f"removed timeline {name}: the control plane does not know it"))
    return actions
