"""Explicit mapping from control's domain objects to Neon's wire shapes, and back for inputs.

Fields Neon requires but Argon does not measure (consumption counters, provisioner,
creation source) get the neutral values below; the API's description (``/api/v2/docs``)
lists them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from argon.api.schemas import account as wa
from argon.api.schemas import branches as wb
from argon.api.schemas import common as wc
from argon.api.schemas import endpoints as we
from argon.api.schemas import projects as wp
from argon.control import models as m
from argon.control import requests as r
from argon.control.organization import ORG_ID

PROVISIONER = "k8s-pod"  # one plain Postgres process per endpoint; no autoscaling VM
CREATION_SOURCE = "argon"
# API keys belong to the single local user; Neon wants a uuid for "created_by".
LOCAL_USER_UUID = str(uuid.uuid5(uuid.NAMESPACE_URL, "argon:local-user"))


# --- outputs -------------------------------------------------------------------------


def operation(op: m.Operation) -> wc.Operation:
    return wc.Operation(
        id=op.id, project_id=op.project_id, branch_id=op.branch_id,
        endpoint_id=op.endpoint_id, action=str(op.action), status=str(op.status),
        error=op.error, failures_count=op.failures_count, created_at=op.created_at,
        updated_at=op.updated_at, total_duration_ms=op.total_duration_ms,
    )


def operations(ops: list[m.Operation]) -> list[wc.Operation]:
    return [operation(op) for op in ops]


def _default_endpoint_settings(s: m.EndpointSettings) -> wp.DefaultEndpointSettingsOut:
    return wp.DefaultEndpointSettingsOut(
        autoscaling_limit_min_cu=s.autoscaling_limit_min_cu,
        autoscaling_limit_max_cu=s.autoscaling_limit_max_cu,
        suspend_timeout_seconds=s.suspend_timeout_seconds,
    )


def _project_common(p: m.Project, proxy_host: str) -> dict[str, Any]:
    return dict(
        id=p.id, platform_id="argon", region_id=p.region_id, name=p.name,
        provisioner=PROVISIONER,
        default_endpoint_settings=_default_endpoint_settings(p.default_endpoint_settings),
        settings=dict(p.settings), pg_version=p.pg_version, proxy_host=proxy_host,
        branch_logical_size_limit=p.branch_logical_size_limit // (1024 * 1024),
        branch_logical_size_limit_bytes=p.branch_logical_size_limit,
        store_passwords=True, cpu_used_sec=0, creation_source=CREATION_SOURCE,
        created_at=p.created_at, updated_at=p.updated_at,
        synthetic_storage_size=p.synthetic_storage_size, owner_id=p.owner_id,
        org_id=ORG_ID,   # the one local organization owns every project
        history_retention_seconds=p.history_retention_seconds,
    )


def project(p: m.Project, proxy_host: str) -> wp.Project:
    return wp.Project(
        **_project_common(p, proxy_host),
        data_storage_bytes_hour=0, data_transfer_bytes=0, written_data_bytes=0,
        compute_time_seconds=0, active_time_seconds=0,
        consumption_period_start=p.created_at, consumption_period_end=_far_future(p.created_at),
        default_branch_id=p.default_branch_id,
    )


def project_list_item(p: m.Project, proxy_host: str) -> wp.ProjectListItem:
    return wp.ProjectListItem(**_project_common(p, proxy_host), active_time=0)


def _far_future(t: datetime) -> datetime:
    # Neon's consumption periods are billing months; a local install has one open period.
    return t.replace(year=9999, month=12, day=31)


def branch(b: m.Branch) -> wb.Branch:
    return wb.Branch(
        id=b.id, project_id=b.project_id, parent_id=b.parent_id, parent_lsn=b.parent_lsn,
        parent_timestamp=b.parent_timestamp, name=b.name, current_state=str(b.current_state),
        pending_state=str(b.pending_state) if b.pending_state else None,
        state_changed_at=b.updated_at, logical_size=b.logical_size,
        creation_source=CREATION_SOURCE, primary=b.default, default=b.default,
        protected=b.protected, cpu_used_sec=0, compute_time_seconds=0,
        active_time_seconds=0, written_data_bytes=0, data_transfer_bytes=0,
        created_at=b.created_at, updated_at=b.updated_at, expires_at=b.expires_at,
        last_reset_at=b.last_reset_at, init_source=b.init_source,
    )


def empty_annotation(branch_id: str) -> dict[str, object]:
    # Argon keeps no branch annotations; Neon's getProjectBranch still returns one.
    return {"object": {"type": "console/branch", "id": branch_id}, "value": {}}


def endpoint(e: m.Endpoint) -> we.Endpoint:
    return we.Endpoint(
        host=e.host, id=e.id, project_id=e.project_id, branch_id=e.branch_id,
        autoscaling_limit_min_cu=e.autoscaling_limit_min_cu,
        autoscaling_limit_max_cu=e.autoscaling_limit_max_cu, region_id=e.region_id,
        type=str(e.type), current_state=str(e.current_state),
        pending_state=str(e.pending_state) if e.pending_state else None,
        settings=we.EndpointSettingsOut(pg_settings=dict(e.pg_settings)),
        pooler_enabled=e.pooler_enabled, pooler_mode=e.pooler_mode, disabled=e.disabled,
        passwordless_access=False, last_active=e.last_active,
        creation_source=CREATION_SOURCE, created_at=e.created_at, updated_at=e.updated_at,
        started_at=e.started_at, suspended_at=e.suspended_at,
        proxy_host=_proxy_host_of(e), suspend_timeout_seconds=e.suspend_timeout_seconds,
        provisioner=PROVISIONER, replication_lag_bytes=e.replication_lag_bytes,
        replication_lag_seconds=e.replication_lag_seconds,
    )


def _proxy_host_of(e: m.Endpoint) -> str:
    # Neon's proxy_host is the endpoint host without its first label.
    host = e.host.split(":", 1)[0]
    _, _, rest = host.partition(".")
    return rest or host


def endpoints(eps: list[m.Endpoint]) -> list[we.Endpoint]:
    return [endpoint(e) for e in eps]


def database(d: m.Database) -> wb.Database:
    return wb.Database(id=d.id, branch_id=d.branch_id, name=d.name, owner_name=d.owner_name,
                       created_at=d.created_at, updated_at=d.updated_at)


def role(x: m.Role) -> wb.Role:
    return wb.Role(branch_id=x.branch_id, name=x.name, password=x.password,
                   protected=x.protected, authentication_method="password",
                   created_at=x.created_at, updated_at=x.updated_at)


def connection_details(c: m.ConnectionUri) -> wb.ConnectionDetails:
    p = c.connection_parameters
    return wb.ConnectionDetails(
        connection_uri=c.connection_uri,
        connection_parameters=wb.ConnectionParameters(
            database=p.get("database", ""), password=p.get("password", ""),
            role=p.get("role", ""), host=p.get("host", ""),
            pooler_host=p.get("pooler_host", "")),
    )


def api_key_item(k: m.ApiKey) -> wa.ApiKeysListResponseItem:
    return wa.ApiKeysListResponseItem(
        id=k.id, name=k.name, created_at=k.created_at,
        created_by=wa.ApiKeyCreatorData(id=LOCAL_USER_UUID, name="local", image=""),
        last_used_at=k.last_used_at, last_used_from_addr=k.last_used_from_addr or "",
    )


def api_key_created(k: m.ApiKey, secret: str) -> wa.ApiKeyCreateResponse:
    return wa.ApiKeyCreateResponse(id=k.id, key=secret, name=k.name, created_at=k.created_at,
                                   created_by=LOCAL_USER_UUID)


def api_key_revoked(k: m.ApiKey) -> wa.ApiKeyRevokeResponse:
    return wa.ApiKeyRevokeResponse(id=k.id, name=k.name, created_at=k.created_at,
                                   created_by=LOCAL_USER_UUID, last_used_at=k.last_used_at,
                                   last_used_from_addr=k.last_used_from_addr or "",
                                   revoked=k.revoked)


def org_api_key_item(k: m.ApiKey) -> wa.OrgApiKeysListResponseItem:
    return wa.OrgApiKeysListResponseItem(**api_key_item(k).model_dump(),
                                         project_id=k.project_id)


def org_api_key_created(k: m.ApiKey, secret: str) -> wa.OrgApiKeyCreateResponse:
    return wa.OrgApiKeyCreateResponse(**api_key_created(k, secret).model_dump(),
                                      project_id=k.project_id)


def org_api_key_revoked(k: m.ApiKey) -> wa.OrgApiKeyRevokeResponse:
    return wa.OrgApiKeyRevokeResponse(**api_key_revoked(k).model_dump(),
                                      project_id=k.project_id)


_USER_DEFAULTS: dict[str, Any] = dict(
    active_seconds_limit=0, auth_accounts=[], email="admin@localhost", id=LOCAL_USER_UUID,
    image="", login="admin", name="Argon", last_name="", projects_limit=0,
    branches_limit=0, max_autoscaling_limit=16.0, plan="self-hosted",
)


# Subscription types that both Neon's current spec and older SDKs (neon-api) accept.
_PORTABLE_SUBSCRIPTIONS = {"UNKNOWN", "direct_sales", "aws_marketplace", "free_v2", "launch",
                           "scale", "business"}


def _billing_account(info: dict[str, Any]) -> wa.BillingAccount:
    # A self-hosted install bills nobody; older SDKs still require the whole object.
    given = info.get("billing_account") or {}
    sub = str(given.get("subscription_type", "UNKNOWN"))
    return wa.BillingAccount(
        state="active", payment_source=wa.PaymentSource(type="none"),
        subscription_type=sub if sub in _PORTABLE_SUBSCRIPTIONS else "UNKNOWN",
        payment_method="none", quota_reset_at_last=datetime(1970, 1, 1, tzinfo=UTC),
        name=str(info.get("name", "Argon")), email=str(info.get("email", "admin@localhost")),
        address_city="", address_country="", address_line1="", address_line2="",
        address_postal_code="", address_state="")


def current_user(info: dict[str, Any]) -> wa.CurrentUserInfoResponse:
    """The platform's user dict over neutral defaults for what Neon requires."""
    known = {k: v for k, v in info.items()
             if k in wa.CurrentUserInfoResponse.model_fields and k != "billing_account"}
    return wa.CurrentUserInfoResponse(**{**_USER_DEFAULTS, **known},
                                      billing_account=_billing_account(info))


def regions(items: list[dict[str, Any]]) -> wa.ActiveRegionsResponse:
    out = []
    for i, reg in enumerate(items):
        rid = str(reg.get("region_id", "local"))
        out.append(wa.RegionResponse(
            region_id=rid, name=str(reg.get("name", rid)),
            default=bool(reg.get("default", i == 0)),
            geo_lat=str(reg.get("geo_lat", "0")), geo_long=str(reg.get("geo_long", "0"))))
    return wa.ActiveRegionsResponse(regions=out)


# --- inputs --------------------------------------------------------------------------


def _settings_input(s: wp.DefaultEndpointSettings | None,
                    min_cu: float | None = None,
                    max_cu: float | None = None) -> r.EndpointSettingsInput | None:
    if s is None and min_cu is None and max_cu is None:
        return None
    return r.EndpointSettingsInput(
        autoscaling_limit_min_cu=(s.autoscaling_limit_min_cu if s else None) or min_cu,
        autoscaling_limit_max_cu=(s.autoscaling_limit_max_cu if s else None) or max_cu,
        suspend_timeout_seconds=s.suspend_timeout_seconds if s else None,
    )


def project_create(body: wp.ProjectCreateRequest) -> r.ProjectCreate:
    p = body.project
    return r.ProjectCreate(
        name=p.name, region_id=p.region_id, pg_version=p.pg_version,
        history_retention_seconds=p.history_retention_seconds,
        default_endpoint_settings=_settings_input(
            p.default_endpoint_settings, p.autoscaling_limit_min_cu, p.autoscaling_limit_max_cu),
        settings=p.settings.model_dump(exclude_none=True) if p.settings else None,
        branch_name=p.branch.name if p.branch else None,
        role_name=p.branch.role_name if p.branch else None,
        database_name=p.branch.database_name if p.branch else None,
    )


def project_update(body: wp.ProjectUpdateRequest) -> r.ProjectUpdate:
    p = body.project
    return r.ProjectUpdate(
        name=p.name, history_retention_seconds=p.history_retention_seconds,
        default_endpoint_settings=_settings_input(p.default_endpoint_settings),
        settings=p.settings.model_dump(exclude_none=True) if p.settings else None,
    )


def _pg_settings(s: we.EndpointSettingsData | None) -> dict[str, str] | None:
    return dict(s.pg_settings) if s and s.pg_settings is not None else None


def branch_endpoint(o: we.BranchCreateRequestEndpointOptions) -> r.EndpointCreate:
    return r.EndpointCreate(
        type=o.type, autoscaling_limit_min_cu=o.autoscaling_limit_min_cu,
        autoscaling_limit_max_cu=o.autoscaling_limit_max_cu,
        suspend_timeout_seconds=o.suspend_timeout_seconds, pg_settings=_pg_settings(o.settings),
    )


def branch_create(body: wb.BranchCreateRequest | None) -> r.BranchCreate:
    if body is None:
        return r.BranchCreate()
    # Wrapped fields win; unwrapped ones are the fallback some scripts send.
    f: wb.BranchCreateFields = body.branch or body
    return r.BranchCreate(
        name=f.name, parent_id=f.parent_id or None, parent_lsn=f.parent_lsn,
        parent_timestamp=f.parent_timestamp, protected=f.protected,
        init_source=f.init_source, expires_at=f.expires_at,
        endpoints=[branch_endpoint(o) for o in body.endpoints or []],
    )


def branch_restore(body: wb.BranchRestoreRequest) -> r.BranchRestore:
    return r.BranchRestore(source_branch_id=body.source_branch_id, source_lsn=body.source_lsn,
                           source_timestamp=body.source_timestamp,
                           preserve_under_name=body.preserve_under_name or None)


def branch_update(body: wb.BranchUpdateRequest) -> r.BranchUpdate:
    b = body.branch
    clear = "expires_at" in b.model_fields_set and b.expires_at is None
    return r.BranchUpdate(name=b.name, protected=b.protected, expires_at=b.expires_at,
                          clear_expires_at=clear)


def endpoint_create(body: we.EndpointCreateRequest) -> r.EndpointCreate:
    e = body.endpoint
    return r.EndpointCreate(
        branch_id=e.branch_id, type=e.type,
        autoscaling_limit_min_cu=e.autoscaling_limit_min_cu,
        autoscaling_limit_max_cu=e.autoscaling_limit_max_cu,
        suspend_timeout_seconds=e.suspend_timeout_seconds, pooler_enabled=e.pooler_enabled,
        pooler_mode=e.pooler_mode, disabled=e.disabled, pg_settings=_pg_settings(e.settings),
    )


def endpoint_update(body: we.EndpointUpdateRequest) -> r.EndpointUpdate:
    e = body.endpoint
    return r.EndpointUpdate(
        branch_id=e.branch_id, autoscaling_limit_min_cu=e.autoscaling_limit_min_cu,
        autoscaling_limit_max_cu=e.autoscaling_limit_max_cu,
        suspend_timeout_seconds=e.suspend_timeout_seconds, pooler_enabled=e.pooler_enabled,
        pooler_mode=e.pooler_mode, disabled=e.disabled, pg_settings=_pg_settings(e.settings),
    )


def database_create(body: wb.DatabaseCreateRequest) -> r.DatabaseCreate:
    return r.DatabaseCreate(name=body.database.name, owner_name=body.database.owner_name)


def database_update(body: wb.DatabaseUpdateRequest) -> r.DatabaseUpdate:
    return r.DatabaseUpdate(name=body.database.name, owner_name=body.database.owner_name)
