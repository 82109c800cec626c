"""Branch, database and role shapes (tag ``Branch``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from argon.api.schemas.common import CursorPagination, Operation, RequestModel
from argon.api.schemas.endpoints import BranchCreateRequestEndpointOptions, Endpoint

InitSource = Literal["parent-data", "schema-only"]


class Branch(BaseModel):
    id: str
    project_id: str
    parent_id: str | None = None
    parent_lsn: str | None = None
    parent_timestamp: datetime | None = None
    name: str
    current_state: str
    pending_state: str | None = None
    state_changed_at: datetime
    logical_size: int | None = None
    creation_source: str
    primary: bool | None = None
    default: bool
    protected: bool
    cpu_used_sec: int
    compute_time_seconds: int
    active_time_seconds: int
    written_data_bytes: int
    data_transfer_bytes: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    last_reset_at: datetime | None = None
    init_source: str | None = None


class Database(BaseModel):
    id: int
    branch_id: str
    name: str
    owner_name: str
    created_at: datetime
    updated_at: datetime


class Role(BaseModel):
    branch_id: str
    name: str
    password: str | None = None
    protected: bool | None = None
    authentication_method: str | None = None
    created_at: datetime
    updated_at: datetime


class ConnectionParameters(BaseModel):
    database: str
    password: str
    role: str
    host: str
    pooler_host: str


class ConnectionDetails(BaseModel):
    connection_uri: str
    connection_parameters: ConnectionParameters


class BranchCreateFields(RequestModel):
    # Neon wants an id; Argon's services also take a branch name here.
    parent_id: str | None = Field(None, max_length=256)
    name: str | None = Field(None, min_length=1, max_length=256)
    parent_lsn: str | None = None
    parent_timestamp: datetime | None = None
    protected: bool | None = None
    archived: bool | None = None
    init_source: InitSource | None = None
    expires_at: datetime | None = None


class BranchCreateRequest(BranchCreateFields):
    """Neon's ``{branch: {...}, endpoints: [...]}``; the branch fields may also come
    unwrapped at the top level, as some scripts send them."""

    branch: BranchCreateFields | None = None
    endpoints: list[BranchCreateRequestEndpointOptions] | None = None
    annotation_value: dict[str, str] | None = None


class BranchUpdateFields(RequestModel):
    name: str | None = Field(None, min_length=1, max_length=256)
    protected: bool | None = None
    expires_at: datetime | None = None


class BranchUpdateRequest(RequestModel):
    branch: BranchUpdateFields


class BranchResponse(BaseModel):
    branch: Branch
    annotation: dict[str, object] | None = None


class BranchOperations(BaseModel):
    branch: Branch
    operations: list[Operation]


class BranchesResponse(BaseModel):
    branches: list[Branch]
    annotations: dict[str, object] = Field(default_factory=dict)
    pagination: CursorPagination | None = None


class BranchesCountResponse(BaseModel):
    count: int


class CreatedBranch(BaseModel):
    branch: Branch
    endpoints: list[Endpoint]
    operations: list[Operation]
    roles: list[Role]
    databases: list[Database]
    connection_uris: list[ConnectionDetails] | None = None


class BranchSchemaResponse(BaseModel):
    sql: str | None = None


class BranchSchemaCompareResponse(BaseModel):
    diff: str | None = None


class BranchRestoreRequest(RequestModel):
    source_branch_id: str = Field(min_length=1, max_length=256)
    source_lsn: str | None = None
    source_timestamp: datetime | None = None
    preserve_under_name: str | None = Field(None, min_length=1, max_length=256)


class DatabaseFields(RequestModel):
    name: str = Field(min_length=1)
    owner_name: str = Field(min_length=1)


class DatabaseCreateRequest(RequestModel):
    database: DatabaseFields


class DatabaseUpdateFields(RequestModel):
    name: str | None = Field(None, min_length=1)
    owner_name: str | None = Field(None, min_length=1)


class DatabaseUpdateRequest(RequestModel):
    database: DatabaseUpdateFields


class DatabasesResponse(BaseModel):
    databases: list[Database]


class DatabaseResponse(BaseModel):
    database: Database


class DatabaseOperations(BaseModel):
    database: Database
    operations: list[Operation]


class RoleFields(RequestModel):
    name: str = Field(min_length=1)
    no_login: bool | None = None


class RoleCreateRequest(RequestModel):
    role: RoleFields


class RolesResponse(BaseModel):
    roles: list[Role]


class RoleResponse(BaseModel):
    role: Role


class RoleOperations(BaseModel):
    role: Role
    operations: list[Operation]


class RolePasswordResponse(BaseModel):
    password: str

