"""Pushing a project's monitoring figures and Postgres logs to an OTLP endpoint, as Neon's
OpenTelemetry integration does.

A project may name one OTLP/HTTP endpoint (and a bearer token, kept encrypted, and
resource attributes such as ``service.name``).  Each sample the monitoring sampler takes
of a running compute becomes the OpenTelemetry SDK's ``MetricsData`` (stamped with the
sample's time, not the push's) and goes out through the SDK's OTLP/HTTP protobuf
exporter to ``<endpoint>/v1/metrics``; the compute's log lines written since the last
push follow to ``<endpoint>/v1/logs`` (``otel_logs.py``).  Pushes run on a thread of
their own, so a slow or dead collector never delays sampling (batches beyond a small
queue are dropped, and the last error is kept for the console).  Names follow Neon's where its docs give them
(``neon_connection_counts`` by ``state``, ``host_cpu_seconds_total``); the others are
Argon's (``argon_*``).  Every point has Neon's labels ``project_id``, ``endpoint_id``,
``compute_id`` and ``job``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from sqlalchemy import delete, select, update

from argon import __version__
from argon.control import lookup
from argon.control.context import ControlContext
from argon.control.otel_logs import LogTail, log_records
from argon.errors import InvalidInput, NotFound
from argon.meta import tables as t

logger = logging.getLogger(__name__)

QUEUE_BATCHES = 64
PUSH_TIMEOUT_SECONDS = 5.0
MAX_ATTRIBUTES = 32
SDK_EXPORTER_LOGGER = "opentelemetry.exporter.otlp"   # where the SDK's exporters log


@dataclass(frozen=True)
class ExportPoint:
    """One compute's figures at one sample, what the sampler hands over."""

    project_id: str
    endpoint_id: str
    at: datetime
    figures: dict[str, Any]
    cpu_seconds: float | None


@dataclass(frozen=True)
class _Target:
    """One project's export: where to, and the SDK exporters bound to it."""

    url: str                 # .../v1/metrics
    resource: Resource
    metrics: OTLPMetricExporter
    logs: OTLPLogExporter

    @property
    def logs_url(self) -> str:
        return _logs_url(self.url)

    def shutdown(self) -> None:
        self.metrics.shutdown()
        self.logs.shutdown()


def _metrics_url(endpoint: str) -> str:
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/metrics") else endpoint + "/v1/metrics"


def _logs_url(metrics_url: str) -> str:
    return metrics_url[: -len("/v1/metrics")] + "/v1/logs"


def _check_endpoint(endpoint: str) -> str:
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"endpoint {endpoint!r} is not an http(s) URL, e.g. "
                           "https://otlp.example.com:4318")
    if len(endpoint) > 2048:
        raise InvalidInput("endpoint is longer than 2048 characters")
    return endpoint.strip()


def resource_of(attributes: dict[str, str]) -> Resource:
    """The project's resource: its attributes over ``service.name=argon`` and the SDK's
    own ``telemetry.sdk.*``."""
    return Resource.create({"service.name": "argon", **attributes})


SCOPE = InstrumentationScope("argon.monitoring", __version__)


def otlp_payload(points: list[ExportPoint], resource: Resource) -> MetricsData:
    """One project's points (all of one sample) as the SDK's ``MetricsData``."""
    gauges: dict[tuple[str, str], list[NumberDataPoint]] = {}
    cpu: list[NumberDataPoint] = []

    for p in points:
        f = p.figures
        nanos = int(p.at.timestamp() * 1e9)
        labels = {"project_id": p.project_id, "endpoint_id": p.endpoint_id,
                  "compute_id": p.endpoint_id, "job": "argon-monitoring"}

        def point(value: float | int, **extra: str) -> NumberDataPoint:
            return NumberDataPoint({**labels, **extra}, 0, nanos, value)  # noqa: B023

        if f.get("connections") is not None:
            active = int(f.get("active_connections") or 0)
            conns = gauges.setdefault(("neon_connection_counts", "1"), [])
            conns.append(point(active, state="active"))
            conns.append(point(max(0, int(f["connections"]) - active), state="idle"))
        if p.cpu_seconds is not None:
            cpu.append(point(float(p.cpu_seconds)))
        for key, name, unit in (("memory_bytes", "argon_memory_bytes", "By"),
                                ("qps", "argon_transactions_per_second", "1/s"),
                                ("rows_written_per_s", "argon_rows_written_per_second", "1/s"),
                                ("wal_bytes_per_s", "argon_wal_bytes_per_second", "By/s"),
                                ("replica_lag_bytes", "neon_replication_delay_bytes", "By")):
            if f.get(key) is not None:
                value = f[key]
                gauges.setdefault((name, unit), []).append(
                    point(int(value) if key.endswith("bytes") else float(value)))
    metrics = [Metric(name, None, unit, Gauge(dps)) for (name, unit), dps in gauges.items()]
    if cpu:
        metrics.append(Metric("host_cpu_seconds_total", None, "s", Sum(
            cpu, AggregationTemporality.CUMULATIVE, is_monotonic=True)))
    return MetricsData([ResourceMetrics(resource,
                                        [ScopeMetrics(SCOPE, metrics, "")], "")])


class _ExportComplaints(logging.Handler):
    """What the SDK's exporters log on the pushing thread during one push: their
    export() says only SUCCESS or FAILURE, the reason (connection refused, a status
    code, retries given up) goes to their log.  Argon logs the outcome once itself."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread: int | None = None
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            try:
                self.messages.append(record.getMessage())
            except Exception:  # noqa: BLE001 - a bad log record must not stop a push
                self.messages.append(str(record.msg))

    def text(self) -> str | None:
        """The first and the last complaint (the reason and the verdict), shortened."""
        if not self.messages:
            return None
        return "; ".join(dict.fromkeys([self.messages[0], self.messages[-1]]))[:400]


class OtelExport:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self._queue: queue.Queue[tuple[str, list[ExportPoint]]] = queue.Queue(QUEUE_BATCHES)
        self._targets: dict[str, _Target] | None = None   # cache; None: read again
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._tail = LogTail()
        self._retired: list[_Target] = []
        self._errors = _ExportComplaints()

    # -- settings ------------------------------------------------------------------------

    def get(self, project_id: str) -> dict[str, Any] | None:
        with self.ctx.tx() as conn:
            lookup.require_project(conn, project_id)
            row = conn.execute(select(t.otel_exports).where(
                t.otel_exports.c.project_id == project_id)).first()
        if row is None:
            return None
        return {"endpoint": row.endpoint, "metrics_url": _metrics_url(row.endpoint),
                "has_bearer_token": bool(row.bearer_encrypted),
                "resource_attributes": dict(row.resource_attributes or {}),
                "last_push_at": row.last_push_at, "last_error": row.last_error}

    def configure(self, project_id: str, endpoint: str, bearer_token: str | None = None,
                  resource_attributes: dict[str, str] | None = None) -> dict[str, Any]:
        endpoint = _check_endpoint(endpoint)
        attrs = dict(resource_attributes or {})
        if len(attrs) > MAX_ATTRIBUTES:
            raise InvalidInput(f"at most {MAX_ATTRIBUTES} resource attributes")
        for k, v in attrs.items():
            if not k or len(k) > 255 or not isinstance(v, str) or len(v) > 1024:
                raise InvalidInput(f"resource attribute {k!r}: keys up to 255 characters, "
                                   "values text up to 1024")
        now = self.ctx.clock()
        token = self.ctx.secrets.seal(bearer_token) if bearer_token else None
        with self.ctx.tx() as conn:
            lookup.require_project(conn, project_id)
            conn.execute(delete(t.otel_exports).where(t.otel_exports.c.project_id == project_id))
            conn.execute(t.otel_exports.insert().values(
                project_id=project_id, endpoint=endpoint, bearer_encrypted=token,
                resource_attributes=attrs, created_at=now, updated_at=now))
        self._invalidate()
        got = self.get(project_id)
        assert got is not None
        return got

    def remove(self, project_id: str) -> None:
        with self.ctx.tx() as conn:
            lookup.require_project(conn, project_id)
            res = conn.execute(delete(t.otel_exports).where(
                t.otel_exports.c.project_id == project_id))
        if not res.rowcount:
            raise NotFound(f"project {project_id} exports no telemetry")
        self._invalidate()

    def _invalidate(self) -> None:
        with self._lock:
            if self._targets is not None:
                self._retired += self._targets.values()
            self._targets = None

    def _load_targets(self) -> dict[str, _Target]:
        with self._lock:
            if self._targets is not None:
                return self._targets
        with self.ctx.tx() as conn:
            rows = conn.execute(select(t.otel_exports)).all()
        targets = {r.project_id: self._target(
            r.endpoint, self.ctx.secrets.open(r.bearer_encrypted) if r.bearer_encrypted else None,
            dict(r.resource_attributes or {})) for r in rows}
        with self._lock:
            if self._targets is None:
                self._targets = targets
                return targets
            current = self._targets
        for target in targets.values():       # another thread loaded them first
            target.shutdown()
        return current

    @staticmethod
    def _target(endpoint: str, bearer: str | None, attributes: dict[str, str]) -> _Target:
        url = _metrics_url(endpoint)
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return _Target(
            url, resource_of(attributes),
            OTLPMetricExporter(endpoint=url, headers=headers, timeout=PUSH_TIMEOUT_SECONDS),
            OTLPLogExporter(endpoint=_logs_url(url), headers=headers,
                            timeout=PUSH_TIMEOUT_SECONDS))

    # -- pushing -------------------------------------------------------------------------

    def submit(self, points: list[ExportPoint]) -> None:
        """Queue one sample's points of the projects that export; never blocks."""
        targets = self._load_targets()
        if not targets:
            return
        by_project: dict[str, list[ExportPoint]] = {}
        for p in points:
            if p.project_id in targets:
                by_project.setdefault(p.project_id, []).append(p)
        for project_id, batch in by_project.items():
            try:
                self._queue.put_nowait((project_id, batch))
            except queue.Full:
                logger.warning("OTLP export of %s is behind; a sample was dropped", project_id)

    def start(self) -> None:
        sdk_log = logging.getLogger(SDK_EXPORTER_LOGGER)
        sdk_log.addHandler(self._errors)
        sdk_log.propagate = False     # each failure is logged once, by push(), not per retry
        self._thread = threading.Thread(target=self._loop, name="argon-otlp", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=PUSH_TIMEOUT_SECONDS + 5)
        self._invalidate()
        self._shut_retired()
        sdk_log = logging.getLogger(SDK_EXPORTER_LOGGER)
        sdk_log.removeHandler(self._errors)
        sdk_log.propagate = True

    def _shut_retired(self) -> None:
        """Close the exporters of settings changed since (on the pushing thread, so none
        is closed in the middle of its push)."""
        with self._lock:
            retired, self._retired = self._retired, []
        for target in retired:
            target.shutdown()

    def _loop(self) -> None:
        self._errors.thread = threading.get_ident()
        while not self._stop.is_set():
            self._shut_retired()
            try:
                project_id, batch = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self.push(project_id, batch)
            except Exception:  # noqa: BLE001 - the exporter must outlive one bad push
                logger.exception("OTLP export of %s failed", project_id)

    def push(self, project_id: str, batch: list[ExportPoint]) -> bool:
        """Send one sample's points, then the new log lines; records the outcome."""
        target = self._load_targets().get(project_id)
        if target is None:
            return False
        started = time.monotonic()
        self._errors.messages = []
        error = None
        result = target.metrics.export(otlp_payload(batch, target.resource))
        if result is not MetricExportResult.SUCCESS:
            error = self._failure(target.url)
        logs = {p.endpoint_id: lines for p in batch
                if (lines := self._tail.read(self._log_path(p.endpoint_id)))}
        if logs and error is None:
            records = log_records(logs, project_id, target.resource, SCOPE, self.ctx.clock())
            if target.logs.export(records) is not LogRecordExportResult.SUCCESS:
                error = self._failure(target.logs_url)
        if error:
            logger.info("OTLP export of %s failed: %s", project_id, error)
        with self.ctx.tx() as conn:
            values: dict[str, Any] = {"last_error": error}
            if error is None:
                values["last_push_at"] = self.ctx.clock()
            conn.execute(update(t.otel_exports).where(
                t.otel_exports.c.project_id == project_id).values(**values))
        logger.debug("OTLP push of %s took %.3f s", project_id, time.monotonic() - started)
        return error is None

    def _failure(self, url: str) -> str:
        return f"{url}: {self._errors.text() or 'the collector did not take the batch'}"

    def _log_path(self, endpoint_id: str) -> Any:
        return self.ctx.settings.home / "logs" / f"{endpoint_id}.log"
