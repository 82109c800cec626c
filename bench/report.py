"""Shared by the benchmark scripts: statistics, the machine, and docs/benchmarks.md.

Each script owns one section of docs/benchmarks.md (between ``<!-- name:begin -->`` and
``<!-- name:end -->`` markers) and rewrites only that section, so scripts can run
separately and in any order.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Every figure here was measured by a script in `bench/` on the machine named in its
section; run the script again to refresh its section. This machine is shared and noisy:
figures are medians (p50) and 95th percentiles (p95) of repeated runs; ratios are
against a baseline measured in the same run.
"""


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


def p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(0.95 * (len(s) - 1))))]


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(ROOT)], capture_output=True,
                        text=True).stdout.strip()
    return (f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, root fs {fs}")


def write_section(name: str, command: str, body: str) -> None:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else HEADER
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"<!-- {name}:begin -->\n{body.rstrip()}\n\n"
               f"Measured {stamp} on {machine()}.\nCommand: `{command}`\n<!-- {name}:end -->")
    pattern = re.compile(rf"<!-- {re.escape(name)}:begin -->.*?<!-- {re.escape(name)}:end -->",
                         re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else \
        text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)


def table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)
