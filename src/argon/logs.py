"""Logging set-up for ``argon start``: one line per event, request ids where known."""

from __future__ import annotations

import contextvars
import logging
from pathlib import Path

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class _OnceFormatter(logging.Formatter):
    """Formats a record once for all handlers (stderr and the log file), and the time
    of day once per second: the proxy logs a line per connection."""

    _second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        text = getattr(record, "_argon_text", None)
        if text is None:
            text = super().format(record)
            record._argon_text = text
        return text

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, super().formatTime(record, datefmt).rsplit(",", 1)[0])
        return f"{self._second[1]},{int(record.msecs):03d}"


def setup_logging(level: str, home: Path) -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    try:
        (home / "logs").mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(home / "logs" / "argon.log"))
    except OSError:
        pass
    formatter = _OnceFormatter(fmt)
    for h in handlers:
        h.setFormatter(formatter)
        h.addFilter(_RequestIdFilter())
        root.addHandler(h)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
