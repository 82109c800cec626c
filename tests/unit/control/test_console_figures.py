"""The console's control pieces that need no Postgres: the OTLP body (as the SDK's
exporter encodes it for the wire), /proc figures of a live process, and the bounded
query history on a real (SQLite) metadata database."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

from argon.control import procstat
from argon.control.context import ControlContext
from argon.control.otel_export import SCOPE, ExportPoint, otlp_payload, resource_of
from argon.control.query_history import KEEP_PER_PROJECT, QueryHistory
from argon.meta import tables as t
from argon.meta.db import open_database

NOW = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)


def test_otlp_body_has_neon_names_labels_and_resource() -> None:
    figures = {"connections": 5, "active_connections": 2, "memory_bytes": 123456,
               "qps": 1.5, "rows_written_per_s": None, "wal_bytes_per_s": 10.0,
               "replica_lag_bytes": None}
    body = _wire(encode_metrics(otlp_payload([ExportPoint("p-1", "ep-1", NOW, figures, 3.25)],
                                             resource_of({"service.name": "mine"}))))
    rm = body["resourceMetrics"][0]
    assert {"key": "service.name", "value": {"stringValue": "mine"}} in rm["resource"]["attributes"]
    metrics = {m["name"]: m for m in rm["scopeMetrics"][0]["metrics"]}
    conns = metrics["neon_connection_counts"]["gauge"]["dataPoints"]
    by_state = {next(a["value"]["stringValue"] for a in p["attributes"] if a["key"] == "state"):
                p["asInt"] for p in conns}
    assert by_state == {"active": "2", "idle": "3"}
    labels = {a["key"] for a in conns[0]["attributes"]}
    assert {"project_id", "endpoint_id", "compute_id", "job"} <= labels
    cpu = metrics["host_cpu_seconds_total"]["sum"]
    assert cpu["isMonotonic"] and cpu["dataPoints"][0]["asDouble"] == 3.25
    assert metrics["argon_memory_bytes"]["gauge"]["dataPoints"][0]["asInt"] == "123456"
    assert conns[0]["timeUnixNano"] == str(int(NOW.timestamp() * 1e9))
    # figures without a value are left out, not sent as zeros
    assert "argon_rows_written_per_second" not in metrics
    assert "neon_replication_delay_bytes" not in metrics


def _wire(message: Any) -> dict[str, Any]:
    """An OTLP protobuf message in OTLP's JSON shape (camelCase, 64-bit ints as text)."""
    return MessageToDict(message, use_integers_for_enums=True)


def test_procstat_reads_a_live_instance_and_its_children() -> None:
    import subprocess
    me = os.getpid()
    with subprocess.Popen(["sleep", "5"]) as child:
        try:
            assert child.pid in procstat.children(me)
            got = procstat.instance(me)
            assert got is not None and got.cpu_seconds > 0 and got.memory_bytes > 1_000_000
            assert got.processes >= 2
        finally:
            child.kill()
    assert procstat.instance(2**22 + 12345) is None   # no such process


@dataclass
class _Req:
    project_id: str
    branch_id: str = "br-1"
    database: str = "db"
    query: str = "SELECT 1"
    explain: str | None = None
    timestamp: datetime | None = None


def test_the_history_keeps_only_the_newest_queries(metadata_url: str) -> None:
    engine = open_database(metadata_url)
    ctx: Any = SimpleNamespace(tx=lambda: ControlContext.tx(ctx), engine=engine)
    with engine.begin() as conn:
        for pid in ("p-1", "p-2"):
            conn.execute(t.projects.insert().values(
                id=pid, name=pid, region_id="local", pg_version=18,
                history_retention_seconds=86400, default_endpoint_settings={}, settings={},
                created_at=NOW, updated_at=NOW))
    history = QueryHistory(ctx)
    out = SimpleNamespace(error=None, results=[], role="owner", duration_ms=1.0)
    for i in range(KEEP_PER_PROJECT + 25):
        history.record(_Req("p-1", query=f"SELECT {i}"), out, NOW)  # type: ignore[arg-type]
    history.record(_Req("p-2"), out, NOW)  # type: ignore[arg-type]
    assert history.count("p-1") == KEEP_PER_PROJECT
    newest = history.list("p-1", limit=3)
    assert [e.query for e in newest] == [f"SELECT {KEEP_PER_PROJECT + 24 - i}" for i in range(3)]
    assert history.count("p-2") == 1       # other projects keep theirs
    failed = SimpleNamespace(error=SimpleNamespace(sqlstate="57014", message="canceling"),
                             results=[], role="owner", duration_ms=2.0)
    history.record(_Req("p-2", query="SELECT pg_sleep(9)"), failed, NOW)  # type: ignore[arg-type]
    assert history.list("p-2", limit=1)[0].status == "cancelled"


def test_log_tail_returns_whole_new_records_once(tmp_path: Path) -> None:
    from argon.control.otel_logs import LogTail, log_records
    log = tmp_path / "ep-1.log"
    log.write_text("2026-12-01 10:00:00.000 UTC [1] LOG:  old line\n")
    tail = LogTail()
    assert tail.read(log) == []                   # starts at the end: no old history
    with log.open("a") as f:
        f.write("2026-12-01 10:00:01.250 UTC [7] neondb_owner@neondb ERROR:  division by zero\n"
                "2026-12-01 10:00:01.250 UTC [7] neondb_owner@neondb STATEMENT:  SELECT 1/0\n"
                "\tcontinued\n"
                "2026-12-01 10:00:02.000 UTC [7] LOG:  half a li")
    got = tail.read(log)
    assert len(got) == 2 and got[1].endswith("SELECT 1/0\n\tcontinued")
    assert tail.read(log) == []                   # the half line waits for its end
    log.write_text("2026-12-01 10:00:03.000 UTC [8] WARNING:  after a restart\n")
    assert tail.read(log) == ["2026-12-01 10:00:03.000 UTC [8] WARNING:  after a restart"]
    body = _wire(encode_logs(log_records({"ep-1": got}, "p-1", resource_of({}), SCOPE, NOW)))
    first = body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert first["severityText"] == "ERROR" and first["severityNumber"] == 17
    assert first["timeUnixNano"] == str(
        int(datetime(2026, 12, 1, 10, 0, 1, tzinfo=UTC).timestamp()) * 10**9 + 250_000_000)
