"""Rendering for the CLI: tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

# soft_wrap: connection strings must stay on one line to be copied; scripts get 200
# columns when stdout is not a terminal.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, soft_wrap=True)


def emit(data: Any, as_json: bool, columns: list[str] | None = None, title: str | None = None) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    rows = data if isinstance(data, list) else [data]
    if not rows:
        console.print("(none)")
        return
    cols = columns or list(rows[0].keys())
    table = Table(title=title)
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in cols))
    console.print(table)
