"""Replication settings of a compute: WAL level, WAL senders, slots and their limits.

``wal_level`` is ``logical`` once the project enabled logical replication (one way, as on
Neon: a logical slot on disk keeps a compute with ``wal_level = replica`` from starting).
The sender and slot counts are Neon's published ones; the limits keep an abandoned slot
from holding WAL forever (docs/logical-replication.md states them).
"""

from __future__ import annotations

from argon.compute.spec import ComputeSpec

# Neon's publisher settings ("max_wal_senders = 10, max_replication_slots = 10").
MAX_WAL_SENDERS = 10
MAX_REPLICATION_SLOTS = 10
# Neon publishes no other figure: PostgreSQL's default, written out so it is stated.
WAL_SENDER_TIMEOUT = "60s"
# A slot whose subscriber is gone may keep at most this much WAL in pg_wal; beyond it
# Postgres invalidates the slot ("wal_status = lost") and recycles the segments.
MAX_SLOT_WAL_KEEP_SIZE = "1GB"
# Neon removes inactive slots after about 40 hours; Postgres 18 does it itself
# (``idle_replication_slot_timeout``, checked at each checkpoint).
IDLE_SLOT_TIMEOUT = "40h"
IDLE_SLOT_TIMEOUT_SINCE = 18


def wal_level(spec: ComputeSpec) -> str:
    return "logical" if spec.logical_replication else "replica"


def sender_settings(spec: ComputeSpec) -> dict[str, str]:
    """Enforced on every compute (users may not change them per endpoint)."""
    out = {
        "max_wal_senders": str(MAX_WAL_SENDERS),
        "max_replication_slots": str(MAX_REPLICATION_SLOTS),
        "wal_sender_timeout": WAL_SENDER_TIMEOUT,
        "max_slot_wal_keep_size": MAX_SLOT_WAL_KEEP_SIZE,
    }
    if spec.install.version >= IDLE_SLOT_TIMEOUT_SINCE:
        out["idle_replication_slot_timeout"] = IDLE_SLOT_TIMEOUT
    return out
