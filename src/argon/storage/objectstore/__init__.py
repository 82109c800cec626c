"""Object storage (an S3-compatible bucket) under Argon's WAL archive and snapshots.

``bucket.Bucket`` is the one client every user of the bucket goes through; the package
import stays free of the client library so entry points pay for it only when they use it.
"""

from argon.storage.objectstore.errors import ObjectStoreError

__all__ = ["ObjectStoreError"]
