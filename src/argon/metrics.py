"""``GET /metrics``: Prometheus text for the platform, built on demand from live state.

A custom collector per process (no module-level registry, so several platforms in one
test process stay apart) reads the metadata counts and the proxy's counters at scrape
time; nothing on the hot paths pays for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response

from argon.meta import tables as t

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class PlatformCollector(Collector):
    def __init__(self, services: Any, proxy_metrics: Callable[[], dict[str, Any] | None]) -> None:
        self.services = services
        self.proxy_metrics = proxy_metrics

    def collect(self) -> Iterator[Any]:
        with self.services.ctx.tx() as conn:
            projects = conn.execute(select(func.count()).select_from(t.projects)).scalar_one()
            branches = conn.execute(select(t.branches.c.state, func.count())
                                    .group_by(t.branches.c.state)).all()
            endpoints = conn.execute(select(t.endpoints.c.state, func.count())
                                     .group_by(t.endpoints.c.state)).all()
            ops = conn.execute(select(t.operations.c.action, t.operations.c.status, func.count())
                               .group_by(t.operations.c.action, t.operations.c.status)).all()
        yield GaugeMetricFamily("argon_projects", "Projects", value=projects)
        g = GaugeMetricFamily("argon_branches", "Branches by state", labels=["state"])
        for state, n in branches:
            g.add_metric([state], n)
        yield g
        g = GaugeMetricFamily("argon_endpoints", "Endpoints by state", labels=["state"])
        for state, n in endpoints:
            g.add_metric([state], n)
        yield g
        c = CounterMetricFamily("argon_operations", "Operations recorded",
                                labels=["action", "status"])
        for action, status, n in ops:
            c.add_metric([action, status], n)
        yield c
        yield _info("argon_clone_driver", "Clone driver in use", "driver",
                    self.services.ctx.storage.driver.name)
        yield from _replica_families(self.services.runtime.replicas.lags())
        proxy = self.proxy_metrics()
        if proxy:
            yield from _proxy_families(proxy)
        yield from _http_guard_families()
        from argon.storage.objectstore.archive_status import wal_archive_families  # noqa: PLC0415
        yield from wal_archive_families(self.services.ctx.storage)
        sync = getattr(self.services.ctx.storage, "snapshot_sync", None)
        if sync is not None:
            from argon.storage.objectstore.snapshot_sync import metric_families  # noqa: PLC0415
            yield from metric_families(
                sync.status, sync.metadata.last_upload_at if sync.metadata else None)


def _replica_families(lags: dict[str, Any]) -> Iterator[Any]:
    """Running read replicas: WAL not replayed yet, and Postgres' replay_lag."""
    size = GaugeMetricFamily("argon_replica_lag_bytes", "WAL bytes a running read "
                             "replica has not replayed yet", labels=["endpoint_id"])
    secs = GaugeMetricFamily("argon_replica_lag_seconds", "Replay lag of a running read "
                             "replica (0 when caught up)", labels=["endpoint_id"])
    for endpoint_id, lag in sorted(lags.items()):
        size.add_metric([endpoint_id], lag.bytes)
        if lag.seconds is not None:
            secs.add_metric([endpoint_id], lag.seconds)
    yield size
    yield secs


def _http_guard_families() -> Iterator[Any]:
    """The HTTP listeners' shared guard: open connections, refusals over the cap (the
    descriptor reserve for Postgres clients) and clients dropped for being too slow."""
    from argon.http_guard import process_guard  # noqa: PLC0415

    snap = process_guard().snapshot()
    yield GaugeMetricFamily("argon_http_connections_open", "Open HTTP and WebSocket "
                            "connections (API, /sql, WebSocket)",
                            value=snap["http_connections_open"])
    yield CounterMetricFamily("argon_http_connections_refused", "HTTP connections refused "
                              "over the cap kept for Postgres clients' descriptors",
                              value=snap["http_connections_refused"])
    yield CounterMetricFamily("argon_http_clients_timed_out", "HTTP clients dropped for not "
                              "finishing headers, body or handshake in time",
                              value=snap["http_clients_timed_out"])


def _info(name: str, doc: str, label: str, value: str) -> GaugeMetricFamily:
    fam = GaugeMetricFamily(name + "_info", doc, labels=[label])
    fam.add_metric([value], 1)
    return fam


def _proxy_families(m: dict[str, Any]) -> Iterator[Any]:
    for key, doc in (("connections_total", "Client connections accepted"),
                     ("websocket_connections_total", "WebSocket connections accepted"),
                     ("bytes_from_clients", "Bytes received from clients"),
                     ("bytes_to_clients", "Bytes sent to clients"),
                     ("cancel_requests", "Cancel requests"),
                     ("wakes", "Computes woken by a connection"),
                     ("early_connections", "Compute connections opened during the "
                      "client's authentication"),
                     ("early_attempts", "Compute logins begun during a client's "
                      "authentication (used, discarded or failed)"),
                     ("early_failures", "Compute logins begun during a client's "
                      "authentication that the compute did not answer in time"),
                     ("spare_logins", "Sessions started on a ready login (a PgBouncer "
                      "login, or a compute backend on a direct door)"),
                     ("reused_logins", "PgBouncer logins kept for the next client after a "
                      "session that left no state"),
                     ("reset_backends", "Direct-door backends kept for the next client "
                      "after a clean session and DISCARD ALL"),
                     ("stale_backends", "Kept direct-door backends closed instead of "
                      "used: the role's login settings changed since, or the reset failed")):
        yield CounterMetricFamily(f"argon_proxy_{key}", doc, value=m.get(key, 0))
    yield GaugeMetricFamily("argon_proxy_connections_active", "Open client connections",
                            value=m.get("connections_active", 0))
    errors = CounterMetricFamily("argon_proxy_errors", "Proxy errors by kind", labels=["kind"])
    for kind, n in (m.get("errors") or {}).items():
        errors.add_metric([kind], n)
    yield errors


def metrics_endpoint(services: Any, proxy_metrics: Callable[[], dict[str, Any] | None]
                     ) -> Callable[[Request], Any]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector(services, proxy_metrics))

    async def metrics(_request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool  # noqa: PLC0415
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE)

    return metrics
