"""Storage: timelines (data directories + WAL archives), clone drivers, branching."""

from argon.storage.conf import (
    RecoveryTarget,
    StorageConf,
    TargetKind,
    render_storage_conf,
    restore_command,
)
from argon.storage.drivers import CloneDriver, CopyDriver, ReflinkDriver, detect_clone_driver
from argon.storage.manifest import BranchPoint, TimelineManifest, TimelineState
from argon.storage.timelines import Storage

__all__ = [
    "BranchPoint", "CloneDriver", "CopyDriver", "RecoveryTarget", "ReflinkDriver", "Storage",
    "StorageConf", "TargetKind", "TimelineManifest", "TimelineState", "detect_clone_driver",
    "render_storage_conf", "restore_command",
]
