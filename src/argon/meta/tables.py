"""Metadata tables (SQLAlchemy Core).  Changes go through a new numbered migration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (JSON, Boolean, Column, Dialect, Float, ForeignKey, Integer,
                        MetaData, String, Table, Text, UniqueConstraint)
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes stored as ISO-8601 text (portable across backends)."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the metadata store")
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)


metadata = MetaData()

projects = Table(
    "projects", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("region_id", String(64), nullable=False),
    Column("pg_version", Integer, nullable=False),
    Column("history_retention_seconds", Integer, nullable=False),
    Column("default_endpoint_settings", JSON, nullable=False),
    Column("settings", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

branches = Table(
    "branches", metadata,
    Column("id", String(64), primary_key=True),
    Column("project_id", String(64), ForeignKey("projects.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("timeline_id", String(64), nullable=False, unique=True),
    Column("parent_id", String(64), nullable=True),
    Column("parent_lsn", String(32), nullable=True),
    Column("parent_timestamp", UtcDateTime, nullable=True),
    Column("name", String(256), nullable=False),
    Column("state", String(16), nullable=False),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("protected", Boolean, nullable=False, default=False),
    Column("init_source", String(32), nullable=False, default="parent-data"),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("last_reset_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("project_id", "name", name="uq_branch_name"),
)

endpoints = Table(
    "endpoints", metadata,
    Column("id", String(64), primary_key=True),
    Column("project_id", String(64), ForeignKey("projects.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("branch_id", String(64), ForeignKey("branches.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("type", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("min_cu", Float, nullable=False),
    Column("max_cu", Float, nullable=False),
    Column("suspend_timeout_seconds", Integer, nullable=False),
    Column("pooler_enabled", Boolean, nullable=False, default=False),
    Column("pooler_mode", String(16), nullable=False, default="transaction"),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("pg_settings", JSON, nullable=False),
    Column("proxy_port", Integer, nullable=True),
    Column("pooler_port", Integer, nullable=True),
    Column("compute_port", Integer, nullable=True),
    Column("last_active", UtcDateTime, nullable=True),
    Column("started_at", UtcDateTime, nullable=True),
    Column("suspended_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

databases = Table(
    "databases", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("branch_id", String(64), ForeignKey("branches.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("owner_name", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("branch_id", "name", name="uq_database_name"),
)

roles = Table(
    "roles", metadata,
    Column("branch_id", String(64), ForeignKey("branches.id", ondelete="CASCADE"),
           primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("protected", Boolean, nullable=False, default=False),
    Column("scram_verifier", Text, nullable=True),
    Column("password_encrypted", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

operations = Table(
    "operations", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(64), nullable=False, index=True),
    Column("branch_id", String(64), nullable=True),
    Column("endpoint_id", String(64), nullable=True),
    Column("action", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("failures_count", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("total_duration_ms", Integer, nullable=False, default=0),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked", Boolean, nullable=False, default=False),
)

# Login roles created with SQL inside a branch's Postgres: their SCRAM verifiers, read
# from pg_authid while the compute runs (at suspend and by a periodic sync), so the proxy
# can authenticate them without waking the compute.  Not part of Neon's role listing.
sql_role_secrets = Table(
    "sql_role_secrets", metadata,
    Column("branch_id", String(64), ForeignKey("branches.id", ondelete="CASCADE"),
           primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("verifier", Text, nullable=False),
    Column("synced_at", UtcDateTime, nullable=False),
)

# Neon's project permissions (``/projects/{id}/permissions``): an e-mail address granted
# access.  Kept after revocation (``revoked_at``) as Neon's answer to a revoke shows it.
project_permissions = Table(
    "project_permissions", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(64), ForeignKey("projects.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("email", String(256), nullable=False),
    Column("granted_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)

# One row per time a compute ran: the consumption history's active and compute time.
# No foreign key to endpoints: Neon's figures include computes deleted since.
compute_runs = Table(
    "compute_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", String(64), ForeignKey("projects.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("branch_id", String(64), nullable=False),
    Column("endpoint_id", String(64), nullable=False, index=True),
    Column("cu", Float, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("stopped_at", UtcDateTime, nullable=True),
)
