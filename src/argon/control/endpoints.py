"""Endpoints: one compute per endpoint, at most one read_write per branch and any number
of read_only ones (read replicas, see ``replicas.py``)."""

from __future__ import annotations

import logging
from dataclasses import replace

from sqlalchemy import select, update

from argon.control import ids, validation
from argon.control.context import ControlContext
from argon.control.models import Endpoint, EndpointState, EndpointType, Mutation
from argon.control.operations import OperationLog
from argon.control.requests import EndpointCreate, EndpointUpdate
from argon.control.rows import endpoint_from_row
from argon.control.runtime import EndpointRuntime, free_port
from argon.control.lookup import branch_row, require_project
from argon.errors import Conflict, InvalidInput, NotFound
from argon.meta import tables as t

logger = logging.getLogger(__name__)


class EndpointService:
    def __init__(self, ctx: ControlContext, oplog: OperationLog, runtime: EndpointRuntime) -> None:
        self.ctx = ctx
        self.oplog = oplog
        self.runtime = runtime

    def _model(self, row) -> Endpoint:  # type: ignore[no-untyped-def]
        model = endpoint_from_row(row, self.ctx.settings)
        if row.type != EndpointType.READ_ONLY.value or row.state != EndpointState.ACTIVE.value:
            return model
        lag = self.runtime.replicas.lag(row.id)
        if lag is None:
            return model
        return replace(model, replication_lag_bytes=lag.bytes,
                       replication_lag_seconds=lag.seconds)

    def _row(self, project_id: str, endpoint_id: str):  # type: ignore[no-untyped-def]
        with self.ctx.tx() as conn:
            row = conn.execute(select(t.endpoints).where(
                t.endpoints.c.id == endpoint_id, t.endpoints.c.project_id == project_id)).first()
        if row is None:
            raise NotFound(f"endpoint {endpoint_id!r} not found in project {project_id}")
        return row

    def get(self, project_id: str, endpoint_id: str) -> Endpoint:
        return self._model(self._row(project_id, endpoint_id))

    def list(self, project_id: str) -> list[Endpoint]:
        with self.ctx.tx() as conn:
            require_project(conn, project_id)
            rows = conn.execute(select(t.endpoints).where(t.endpoints.c.project_id == project_id)
                                .order_by(t.endpoints.c.created_at)).all()
        return [self._model(r) for r in rows]

    def list_for_branch(self, project_id: str, branch_id: str) -> list[Endpoint]:
        with self.ctx.tx() as conn:
            branch = branch_row(conn, project_id, branch_id).id
            rows = conn.execute(select(t.endpoints).where(t.endpoints.c.branch_id == branch)
                                .order_by(t.endpoints.c.created_at)).all()
        return [self._model(r) for r in rows]

    def primary_endpoint_id(self, branch_id: str) -> str:
        with self.ctx.tx() as conn:
            ep = conn.execute(select(t.endpoints.c.id).where(
                t.endpoints.c.branch_id == branch_id, t.endpoints.c.type == "read_write")).scalar()
        if ep is None:
            raise Conflict(f"branch {branch_id} has no read_write endpoint; create one first")
        return str(ep)

    def create(self, project_id: str, req: EndpointCreate) -> Mutation[Endpoint]:
        if req.type not in (EndpointType.READ_WRITE.value, EndpointType.READ_ONLY.value):
            raise InvalidInput(f"endpoint type must be 'read_write' or 'read_only', not {req.type!r}")
        if not req.branch_id:
            raise InvalidInput("endpoint.branch_id is required")
        pg_settings = validation.pg_settings(req.pg_settings or {})
        if req.pooler_mode not in (None, "transaction"):
            raise InvalidInput("pooler_mode must be 'transaction'")
        endpoint_id = ids.endpoint_id()
        now = self.ctx.clock()
        with self.ctx.tx() as conn:
            project = conn.execute(select(t.projects).where(t.projects.c.id == project_id)).first()
            if project is None:
                raise NotFound(f"project {project_id!r} not found")
            branch = branch_row(conn, project_id, req.branch_id)
            if req.type == EndpointType.READ_WRITE.value and conn.execute(
                    select(t.endpoints.c.id).where(
                        t.endpoints.c.branch_id == branch.id,
                        t.endpoints.c.type == "read_write")).first():
                raise Conflict(f"branch {branch.name} already has a read_write endpoint")
            des = project.default_endpoint_settings or {}
            min_cu = req.autoscaling_limit_min_cu if req.autoscaling_limit_min_cu is not None \
                else des.get("autoscaling_limit_min_cu", 0.25)
            max_cu = req.autoscaling_limit_max_cu if req.autoscaling_limit_max_cu is not None \
                else max(des.get("autoscaling_limit_max_cu", 0.25), min_cu)
            min_cu, max_cu = validation.cu_range(min_cu, max_cu)
            timeout = validation.suspend_timeout(
                req.suspend_timeout_seconds if req.suspend_timeout_seconds is not None
                else des.get("suspend_timeout_seconds", 0))
            local = not self.ctx.settings.domain
            conn.execute(t.endpoints.insert().values(
                id=endpoint_id, project_id=project_id, branch_id=branch.id, type=req.type,
                state=EndpointState.INIT.value, min_cu=min_cu, max_cu=max_cu,
                suspend_timeout_seconds=timeout, pooler_enabled=bool(req.pooler_enabled),
                pooler_mode="transaction", disabled=bool(req.disabled), pg_settings=pg_settings,
                proxy_port=free_port() if local else None,
                pooler_port=free_port() if local else None, created_at=now, updated_at=now))
        self.ctx.on_endpoints_changed()
        op_ids: list[str] = []
        if not req.disabled:
            self.runtime.ensure_running(endpoint_id)
            op_ids = self._recent_ops(endpoint_id)
        return Mutation(self.get(project_id, endpoint_id), self.oplog.get_many(op_ids))

    def _recent_ops(self, endpoint_id: str) -> list[str]:
        with self.ctx.tx() as conn:
            return list(conn.execute(select(t.operations.c.id).where(
                t.operations.c.endpoint_id == endpoint_id)
                .order_by(t.operations.c.created_at.desc()).limit(1)).scalars())

    def update(self, project_id: str, endpoint_id: str, req: EndpointUpdate) -> Mutation[Endpoint]:
        row = self._row(project_id, endpoint_id)
        values: dict[str, object] = {}
        if req.branch_id is not None and req.branch_id != row.branch_id:
            raise InvalidInput("moving an endpoint to another branch is not supported; "
                               "create a new endpoint on that branch")
        if req.autoscaling_limit_min_cu is not None or req.autoscaling_limit_max_cu is not None:
            min_cu = req.autoscaling_limit_min_cu if req.autoscaling_limit_min_cu is not None else row.min_cu
            max_cu = req.autoscaling_limit_max_cu if req.autoscaling_limit_max_cu is not None else row.max_cu
            values["min_cu"], values["max_cu"] = validation.cu_range(min_cu, max_cu)
        if req.suspend_timeout_seconds is not None:
            values["suspend_timeout_seconds"] = validation.suspend_timeout(req.suspend_timeout_seconds)
        if req.pooler_enabled is not None:
            values["pooler_enabled"] = bool(req.pooler_enabled)
        if req.pooler_mode is not None and req.pooler_mode != "transaction":
            raise InvalidInput("pooler_mode must be 'transaction'")
        if req.disabled is not None:
            values["disabled"] = bool(req.disabled)
        if req.pg_settings is not None:
            values["pg_settings"] = validation.pg_settings(req.pg_settings)
        if values:
            with self.ctx.tx() as conn:
                conn.execute(update(t.endpoints).where(t.endpoints.c.id == endpoint_id)
                             .values(updated_at=self.ctx.clock(), **values))
        # Settings that shape the running Postgres apply on the next start, as in Neon.
        restart_keys = {"min_cu", "max_cu", "pg_settings"}
        if restart_keys & values.keys() and self.runtime.running(endpoint_id):
            self.runtime.suspend(endpoint_id, reason="configuration changed")
            self.runtime.ensure_running(endpoint_id)
        if values.get("disabled"):
            self.runtime.suspend(endpoint_id, reason="disabled")
        return Mutation(self.get(project_id, endpoint_id), [])

    def delete(self, project_id: str, endpoint_id: str) -> Mutation[Endpoint]:
        endpoint = self.get(project_id, endpoint_id)
        self.runtime.suspend(endpoint_id, reason="endpoint deleted")
        with self.ctx.tx() as conn:
            conn.execute(t.endpoints.delete().where(t.endpoints.c.id == endpoint_id))
        if endpoint.type is EndpointType.READ_ONLY:
            # after the row: a crash in between leaves data that start-up repair removes
            self.runtime.replicas.deleted(endpoint_id)
        self.ctx.on_endpoints_changed()
        return Mutation(endpoint, [])

    def start(self, project_id: str, endpoint_id: str) -> Mutation[Endpoint]:
        self._row(project_id, endpoint_id)
        self.runtime.ensure_running(endpoint_id)
        return Mutation(self.get(project_id, endpoint_id),
                        self.oplog.get_many(self._recent_ops(endpoint_id)))

    def suspend(self, project_id: str, endpoint_id: str) -> Mutation[Endpoint]:
        self._row(project_id, endpoint_id)
        self.runtime.suspend(endpoint_id)
        return Mutation(self.get(project_id, endpoint_id),
                        self.oplog.get_many(self._recent_ops(endpoint_id)))

    def restart(self, project_id: str, endpoint_id: str) -> Mutation[Endpoint]:
        self._row(project_id, endpoint_id)
        self.runtime.suspend(endpoint_id, reason="restart")
        self.runtime.ensure_running(endpoint_id)
        return Mutation(self.get(project_id, endpoint_id),
                        self.oplog.get_many(self._recent_ops(endpoint_id)))
