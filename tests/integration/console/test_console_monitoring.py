"""Monitoring: the figures Argon records per endpoint (``control/monitoring.py``, one
sample a second here) and the page that charts them in a real Chromium."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.fixtures.argon_env import ArgonEnv, running_env, wait_operations
from tests.integration.console.conftest import screenshot, signed_in, wait_until

pytestmark = pytest.mark.skipif(__import__("os").geteuid() != 0,
                                reason="Argon runs Postgres as the argon account: needs root")


@pytest.fixture(scope="module")
def mon_env() -> Iterator[ArgonEnv]:
    with running_env("monitoring", ["--monitoring-interval", "1"]) as env:
        yield env


@pytest.fixture(scope="module")
def busy(mon_env: ArgonEnv) -> dict[str, Any]:
    """The default project's compute, woken and written to for a few samples."""
    project = mon_env.default_project()
    ep = mon_env.api("GET", f"/projects/{project['id']}/endpoints").json()["endpoints"][0]
    uri = mon_env.api("GET", f"/projects/{project['id']}/connection_uri", params={
        "database_name": "neondb", "role_name": "neondb_owner"}).json()["uri"]
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ticks (n int)")
        for _ in range(5):
            for _ in range(20):
                conn.execute("INSERT INTO ticks VALUES (1)")
            time.sleep(1)
        # another open session counts as a connection in the next samples
        with psycopg.connect(uri, autocommit=True) as other:
            other.execute("SELECT 1")
            time.sleep(2.5)
    return {"project": project["id"], "endpoint": ep["id"], "uri": uri}


def _samples(env: ArgonEnv, busy: dict[str, Any]) -> list[dict[str, Any]]:
    r = env.api("GET", f"/console/projects/{busy['project']}/endpoints/{busy['endpoint']}/metrics")
    assert r.status_code == 200, r.text
    return r.json()["samples"]  # type: ignore[no-any-return]


def test_the_sampler_records_figures_of_a_running_compute(mon_env: ArgonEnv,
                                                          busy: dict[str, Any]) -> None:
    samples = _samples(mon_env, busy)
    active = [s for s in samples if s["state"] == "active"]
    assert len(active) >= 5, samples
    assert all(s["memory_bytes"] and s["memory_bytes"] > 1_000_000 for s in active)
    rated = [s for s in active if s["qps"] is not None]
    assert max(s["qps"] for s in rated) >= 5          # 20 inserts a second
    assert max(s["rows_written_per_s"] for s in rated) >= 5
    assert max(s["wal_bytes_per_s"] for s in rated) > 0
    assert max(s["connections"] for s in active) >= 2  # both client sessions, not Argon's
    assert all(s["cpu_percent"] is not None and s["cpu_percent"] >= 0 for s in rated)
    assert all(s["replica_lag_bytes"] is None for s in active)   # a primary


def test_a_suspended_compute_is_recorded_idle_and_not_woken(mon_env: ArgonEnv,
                                                            busy: dict[str, Any]) -> None:
    r = mon_env.api("POST", f"/projects/{busy['project']}/endpoints/{busy['endpoint']}/suspend")
    assert r.status_code == 200, r.text
    wait_until(lambda: _samples(mon_env, busy)[-1]["state"] == "idle", 30, "an idle sample")
    idle_rows = len([s for s in _samples(mon_env, busy) if s["state"] == "idle"])
    time.sleep(3)
    after = _samples(mon_env, busy)
    assert after[-1]["state"] == "idle"
    assert len([s for s in after if s["state"] == "idle"]) == idle_rows   # one row per sleep
    ep = mon_env.api("GET", f"/projects/{busy['project']}/endpoints/{busy['endpoint']}").json()
    assert ep["endpoint"]["current_state"] == "idle"   # sampling did not wake it


def test_bad_metric_requests(mon_env: ArgonEnv, busy: dict[str, Any]) -> None:
    base = f"/console/projects/{busy['project']}/endpoints"
    r = mon_env.api("GET", f"{base}/ep-nothing-here/metrics")
    assert r.status_code == 404 and "ep-nothing-here" in r.json()["message"]
    r = mon_env.api("GET", f"{base}/{busy['endpoint']}/metrics",
                    params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"})
    assert r.status_code == 400 and "before" in r.json()["message"]


def test_the_page_charts_recorded_points(mon_env: ArgonEnv, busy: dict[str, Any],
                                         page: Any) -> None:
    with psycopg.connect(busy["uri"], autocommit=True) as conn:   # wake it again
        conn.execute("INSERT INTO ticks VALUES (2)")
        time.sleep(3)
    signed_in(page, mon_env, f"#/projects/{busy['project']}/monitoring")
    for chart in ("cpu", "memory", "connections", "qps", "rows", "wal"):
        drawn = page.get_by_test_id(f"chart-{chart}")
        drawn.wait_for()
        page.wait_for_function(
            f"() => Number(document.querySelector('[data-testid=chart-{chart}]')"
            ".dataset.points) >= 3")
        assert drawn.locator("canvas").count() == 1      # uPlot draws on a canvas
    assert page.get_by_test_id("chart-lag").get_attribute("data-points") == "0"
    state = page.get_by_test_id("chart-state")
    assert state.locator("rect[data-state=active]").count() >= 1
    assert state.locator("rect[data-state=idle]").count() >= 1   # the suspend before
    page.get_by_test_id("range-5m").click()
    page.get_by_test_id("range-5m").and_(page.locator(".primary")).wait_for()
    assert "every 1 s" in page.get_by_test_id("monitoring-status").inner_text()
    screenshot(page, "monitoring")


class _Receiver:
    """A tiny OTLP/HTTP collector: keeps every protobuf body posted to /v1/metrics and
    /v1/logs (what the SDK's exporter sends), decoded to OTLP's JSON shape."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from google.protobuf.json_format import MessageToDict
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceRequest,
        )
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )

        kinds = {"/v1/metrics": ExportMetricsServiceRequest, "/v1/logs": ExportLogsServiceRequest}
        got = self.got = []   # type: list[tuple[str, dict[str, str], Any]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                message = kinds[self.path].FromString(body)
                got.append((self.path, {k.lower(): v for k, v in self.headers.items()},
                            MessageToDict(message, use_integers_for_enums=True)))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")   # an empty Export*ServiceResponse
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _metric_points(body: Any, name: str) -> list[dict[str, Any]]:
    out = []
    for rm in body["resourceMetrics"]:
        for sm in rm["scopeMetrics"]:
            for m in sm["metrics"]:
                if m["name"] == name:
                    out += (m.get("gauge") or m.get("sum"))["dataPoints"]
    return out


def _log_lines(receiver: _Receiver, text: str) -> list[dict[str, Any]]:
    return [r for path, _h, body in receiver.got if path == "/v1/logs"
            for rl in body["resourceLogs"] for sl in rl["scopeLogs"] for r in sl["logRecords"]
            if text in r["body"]["stringValue"]]


def test_figures_and_logs_are_pushed_to_an_otlp_receiver(mon_env: ArgonEnv, busy: dict[str, Any],
                                                page: Any) -> None:
    receiver = _Receiver()
    try:
        signed_in(page, mon_env, f"#/projects/{busy['project']}/monitoring")
        page.get_by_test_id("otel-status").filter(has_text="Not exporting").wait_for()
        page.get_by_test_id("otel-endpoint").fill(receiver.url)
        page.get_by_test_id("otel-token").fill("tok-123")
        page.get_by_test_id("otel-service-name").fill("my-argon")
        page.get_by_test_id("otel-save").click()
        page.get_by_test_id("otel-status").filter(has_text=f"{receiver.url}/v1/metrics").wait_for()
        with psycopg.connect(busy["uri"], autocommit=True) as conn:   # a running compute
            conn.execute("INSERT INTO ticks VALUES (3)")
            wait_until(lambda: any(_metric_points(b, "neon_connection_counts")
                                   for _p, _h, b in receiver.got), 30, "an OTLP push")
        path, headers, body = next((p, h, b) for p, h, b in receiver.got
                                   if _metric_points(b, "neon_connection_counts"))
        assert path == "/v1/metrics"
        assert headers["authorization"] == "Bearer tok-123"     # names are case-blind
        assert headers["content-type"] == "application/x-protobuf"
        resource = {a["key"]: a["value"]["stringValue"]
                    for a in body["resourceMetrics"][0]["resource"]["attributes"]}
        assert resource["service.name"] == "my-argon"
        point = _metric_points(body, "neon_connection_counts")[0]
        labels = {a["key"]: a["value"]["stringValue"] for a in point["attributes"]}
        assert labels["endpoint_id"] == busy["endpoint"]
        assert labels["project_id"] == busy["project"]
        assert labels["state"] in ("active", "idle")
        assert _metric_points(body, "host_cpu_seconds_total")[0]["asDouble"] > 0
        assert int(_metric_points(body, "argon_memory_bytes")[0]["asInt"]) > 1_000_000
        # Postgres' log lines written since the export began follow on /v1/logs
        with psycopg.connect(busy["uri"], autocommit=True) as conn:
            with pytest.raises(psycopg.errors.DivisionByZero):
                conn.execute("SELECT 1/0 AS otel_marker")
            wait_until(lambda: _log_lines(receiver, "division by zero"), 30, "an OTLP log push")
        record = _log_lines(receiver, "division by zero")[0]
        assert record["severityText"] == "ERROR" and record["severityNumber"] == 17
        assert {"key": "endpoint_id", "value": {"stringValue": busy["endpoint"]}} in \
            record["attributes"]
        got = mon_env.api("GET", f"/console/projects/{busy['project']}/otel").json()["otel"]
        assert got["last_error"] is None and got["last_push_at"] and got["has_bearer_token"]
        assert "tok-123" not in str(got)   # the token is never shown back
        page.reload()
        page.get_by_test_id("otel-status").filter(has_text="last push").wait_for()
        page.get_by_test_id("otel-remove").click()
        page.get_by_test_id("otel-status").filter(has_text="Not exporting").wait_for()
        got = mon_env.api("GET", f"/console/projects/{busy['project']}/otel").json()
        assert got["otel"] is None
    finally:
        receiver.close()


def test_otlp_settings_are_checked_and_failures_kept(mon_env: ArgonEnv,
                                                    busy: dict[str, Any]) -> None:
    base = f"/console/projects/{busy['project']}/otel"
    r = mon_env.api("PUT", base, json={"endpoint": "ftp://nowhere"})
    assert r.status_code == 400 and "http(s) URL" in r.json()["message"]
    from tests.fixtures.common import free_port
    dead = f"http://127.0.0.1:{free_port()}"
    r = mon_env.api("PUT", base, json={"endpoint": dead})
    assert r.status_code == 200, r.text
    try:
        with psycopg.connect(busy["uri"], autocommit=True) as conn:
            conn.execute("SELECT 1")
            wait_until(lambda: mon_env.api("GET", base).json()["otel"]["last_error"], 30,
                       "a failed push")
        assert dead in mon_env.api("GET", base).json()["otel"]["last_error"]
        # sampling went on meanwhile
        assert _samples(mon_env, busy)[-1]["state"] == "active"
    finally:
        assert mon_env.api("DELETE", base).status_code == 200
    assert mon_env.api("DELETE", base).status_code == 404


def test_a_read_replica_reports_its_lag(mon_env: ArgonEnv, busy: dict[str, Any],
                                        page: Any) -> None:
    pid = busy["project"]
    branch = mon_env.api("GET", f"/projects/{pid}/endpoints/{busy['endpoint']}").json()[
        "endpoint"]["branch_id"]
    r = mon_env.api("POST", f"/projects/{pid}/endpoints",
                    json={"endpoint": {"branch_id": branch, "type": "read_only"}})
    assert r.status_code == 201, r.text
    replica = r.json()["endpoint"]["id"]
    wait_operations(mon_env.api, pid, r.json()["operations"])
    with psycopg.connect(busy["uri"], autocommit=True) as conn:     # the primary runs
        conn.execute("INSERT INTO ticks SELECT 4 FROM generate_series(1, 100)")
        r = mon_env.api("POST", f"/projects/{pid}/endpoints/{replica}/start")
        assert r.status_code == 200, r.text
        wait_operations(mon_env.api, pid, r.json()["operations"])

        def lagged() -> list[dict[str, Any]]:
            got = mon_env.api("GET", f"/console/projects/{pid}/endpoints/{replica}/metrics")
            return [s for s in got.json()["samples"] if s["replica_lag_bytes"] is not None]
        samples = wait_until(lagged, 60, "replica lag samples")
        assert all(s["replica_lag_bytes"] >= 0 for s in samples)
        signed_in(page, mon_env, f"#/projects/{pid}/monitoring")
        page.get_by_test_id("monitoring-endpoint").select_option(replica)
        page.wait_for_function(
            "() => Number(document.querySelector('[data-testid=chart-lag]')"
            "?.dataset.points) >= 1")
    primary = mon_env.api("GET", f"/console/projects/{pid}/endpoints/{busy['endpoint']}/metrics")
    assert all(s["replica_lag_bytes"] is None for s in primary.json()["samples"])
