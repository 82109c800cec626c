"""Postgres logs of a compute as OpenTelemetry log records (the logs half of the OTLP
export; the SDK's ``OTLPLogExporter`` sends them).

Each compute writes its log to ``<home>/logs/<endpoint>.log`` with the prefix
``%m [%p] %q%u@%d``.  ``LogTail`` remembers how far each file was read and returns the
records written since (starting at the end of the file the first time, so turning the
export on does not replay old history), a bounded amount per call; continuation lines
(tab-indented) stay with their record.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

MAX_BYTES_PER_READ = 256 * 1024
_RECORD = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (\S+) \[(\d+)\] (.*)$")
_LEVEL = re.compile(r"(?:\S+@\S+ )?(DEBUG[1-5]|LOG|INFO|NOTICE|WARNING|ERROR|FATAL|PANIC|"
                    r"DETAIL|HINT|STATEMENT|CONTEXT|QUERY|LOCATION):  ")
_SEVERITY = {"DEBUG": 5, "LOG": 9, "INFO": 9, "NOTICE": 10, "WARNING": 13, "ERROR": 17,
             "FATAL": 21, "PANIC": 24}


class LogTail:
    def __init__(self) -> None:
        self._offsets: dict[Path, int] = {}

    def read(self, path: Path) -> list[str]:
        """Whole log records appended to ``path`` since the last call."""
        try:
            size = path.stat().st_size
        except OSError:
            return []
        start = self._offsets.get(path)
        if start is None or size < start:          # first look, or the file was replaced
            self._offsets[path] = size if start is None else 0
            if start is None:
                return []
            start = 0
        with path.open("rb") as f:
            f.seek(start)
            data = f.read(min(size - start, MAX_BYTES_PER_READ))
        end = data.rfind(b"\n") + 1                # only complete lines
        self._offsets[path] = start + end
        records: list[str] = []
        for line in data[:end].decode("utf-8", "replace").splitlines():
            if records and (line.startswith("\t") or not _RECORD.match(line)):
                records[-1] += "\n" + line
            elif line:
                records.append(line)
        return records


def _record(line: str, attributes: dict[str, str], observed: int,
            resource: Resource, scope: InstrumentationScope) -> ReadableLogRecord:
    m = _RECORD.match(line)
    nanos = observed
    level = "LOG"
    if m:
        try:
            when = datetime.strptime(m.group(1).split(".")[0], "%Y-%m-%d %H:%M:%S").replace(
                tzinfo=UTC)
            frac = m.group(1).partition(".")[2]
            nanos = int(when.timestamp()) * 10**9 + int((frac or "0").ljust(9, "0")[:9])
        except ValueError:
            pass
        lv = _LEVEL.match(m.group(4))
        if lv:
            level = lv.group(1)
    severity = SeverityNumber(_SEVERITY.get(level.rstrip("12345"), 9))
    return ReadableLogRecord(
        LogRecord(timestamp=nanos, observed_timestamp=observed, severity_text=level,
                  severity_number=severity, body=line, attributes=attributes),
        resource=resource, instrumentation_scope=scope)


def log_records(records: dict[str, list[str]], project_id: str, resource: Resource,
                scope: InstrumentationScope, now: datetime) -> list[ReadableLogRecord]:
    """The SDK's log records for ``{endpoint_id: [record, ...]}``, what its OTLP log
    exporter sends as one ``ExportLogsServiceRequest``."""
    observed = int(now.timestamp() * 1e9)
    out = []
    for endpoint_id, lines in records.items():
        labels = {"project_id": project_id, "endpoint_id": endpoint_id,
                  "compute_id": endpoint_id, "job": "argon-postgres-logs"}
        out += [_record(line, labels, observed, resource, scope) for line in lines]
    return out
