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
    for h in handlers:
        h.setFormatter(logging.Formatter(fmt))
        h.addFilter(_RequestIdFilter())
        root.addHandler(h)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
