"""Metadata tables (SQLAlchemy Core).  Changes go through a new numbered migration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, Column, Dialect, Float, ForeignKey, Index,
                        Integer, MetaData, String, Table, Text, UniqueConstraint)
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
    # with compute_port: where the running compute listens, as its provider's start()
    # returned it (socket directory or TCP host); NULL while it does not run
    Column("compute_host", String(255), nullable=True),
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
    # Neon's scopes: an organization key has org_id; a project-scoped key also project_id
    Column("org_id", String(64), nullable=True),
    Column("project_id", String(64), nullable=True),
    Column("last_used_from_addr", String(64), nullable=True),
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

# The console's SQL editor history, per project, bounded (control/query_history.py).
query_history = Table(
    "query_history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", String(64), ForeignKey("projects.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("branch_id", String(64), nullable=False),
    Column("database", String(64), nullable=False),
    Column("role", String(64), nullable=False),
    Column("query", Text, nullable=False),
    Column("mode", String(16), nullable=False),         # run, explain, analyze
    Column("at_time", UtcDateTime, nullable=True),      # time travel: the past point
    Column("status", String(16), nullable=False),       # ok, error, cancelled
    Column("error", Text, nullable=True),
    Column("row_count", Integer, nullable=True),
    Column("duration_ms", Float, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
)

# Figures the monitoring sampler records per endpoint (control/monitoring.py); rates are
# per second over the interval since the previous sample; pruned to a bounded window.
# No foreign key to endpoints: a deleted endpoint's figures age out with the window.
endpoint_samples = Table(
    "endpoint_samples", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint_id", String(64), nullable=False),
    Column("project_id", String(64), ForeignKey("projects.id", ondelete="CASCADE"),
           nullable=False),
    Column("at", UtcDateTime, nullable=False, index=True),
    Column("state", String(16), nullable=False),         # active, idle
    Column("cpu_percent", Float, nullable=True),         # of one core
    Column("memory_bytes", BigInteger, nullable=True),   # PSS of the Postgres processes
    Column("connections", Integer, nullable=True),
    Column("active_connections", Integer, nullable=True),
    Column("qps", Float, nullable=True),                 # transactions per second
    Column("rows_written_per_s", Float, nullable=True),
    Column("wal_bytes_per_s", Float, nullable=True),
    Column("replica_lag_bytes", BigInteger, nullable=True),   # replicas only
    Index("ix_endpoint_samples_endpoint_at", "endpoint_id", "at"),
)

# Where a project's monitoring figures are pushed (OTLP/HTTP JSON), as Neon's
# OpenTelemetry integration sends them; the bearer token is kept encrypted (SecretBox).
otel_exports = Table(
    "otel_exports", metadata,
    Column("project_id", String(64), ForeignKey("projects.id", ondelete="CASCADE"),
           primary_key=True),
    Column("endpoint", String(2048), nullable=False),
    Column("bearer_encrypted", Text, nullable=True),
    Column("resource_attributes", JSON, nullable=False),
    Column("last_push_at", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# OAuth 2.1 sign-in (neonctl auth, MCP clients): dynamically registered clients, and the
# tokens issued to them, stored as SHA-256 digests; each token acts as the API key the
# user approved with (revoking the key revokes its tokens). ``grant_id`` ties an access
# token to the refresh token it came with, so one revocation ends both.
oauth_clients = Table(
    "oauth_clients", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("info", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

oauth_tokens = Table(
    "oauth_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),            # "access" | "refresh"
    Column("grant_id", String(36), nullable=False, index=True),
    Column("client_id", String(64), nullable=False),
    Column("api_key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"),
           nullable=False),
    Column("scopes", Text, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Safe migrations prepared on a temporary branch and not yet completed (MCP's
# prepare/complete_database_migration): kept here so a restart does not forget them.
safe_migrations = Table(
    "safe_migrations", metadata,
    Column("id", String(32), primary_key=True),
    Column("project_id", String(64), ForeignKey("projects.id", ondelete="CASCADE"),
           nullable=False),
    Column("target_branch_id", String(64), nullable=False),
    Column("database", String(128), nullable=False),
    Column("sql", Text, nullable=False),
    Column("temp_branch_id", String(64), nullable=False),
    Column("temp_branch_name", String(256), nullable=False),
    Column("role", String(128), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)
