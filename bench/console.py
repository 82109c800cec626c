"""Console benchmark: the branches page of a project with 1,000 branches, in Chromium.

Starts a real Argon (``argon start``) on a temporary home, writes N branch rows straight
into its metadata (as bench/api_latency.py does: the tree reads only metadata), signs in
with the bootstrap key in Debian's Chromium (Playwright, headless) and measures:
- page load: navigation to ``/console/#/projects/<id>/branches`` until the last of the
  N+1 rows is in the tree (first load with an empty browser cache, then p50/p95 of warm
  loads: the same tab reloaded, as a user does);
- the three API calls the page makes (branches, endpoints, branch sizes), p50 over HTTP.
Writes the ``console`` section of docs/benchmarks.md.

Usage: python bench/console.py [--branches 1000] [--loads 15]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import p50, p95, table, write_section  # noqa: E402
from tests.fixtures.argon_env import running_env, wait_operations  # noqa: E402
from tests.fixtures.browser import CHROMIUM  # noqa: E402
from tests.integration.console.bulk import add_metadata_branches  # noqa: E402


def _ms(xs: list[float]) -> str:
    return f"{p50(xs) * 1000:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--branches", type=int, default=1000)
    ap.add_argument("--loads", type=int, default=15)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only when run

    with running_env("bench-console") as env:
        home = env.home   # removed after running_env stopped Argon and its computes
        body = env.api("POST", "/projects", json={"project": {"name": "bench-console"}}).json()
        pid, main_branch = body["project"]["id"], body["branch"]["id"]
        wait_operations(env.api, pid, body["operations"])
        made = add_metadata_branches(env, pid, main_branch, args.branches)
        url = f"http://127.0.0.1:{env.api_port}/console/#/projects/{pid}/branches"
        last = f"[data-testid='branch-row-{made[-1]}']"

        calls: dict[str, list[float]] = {"branches": [], "endpoints": [], "branch sizes": []}
        paths = {"branches": f"/projects/{pid}/branches?limit=10000",
                 "endpoints": f"/projects/{pid}/endpoints",
                 "branch sizes": f"/console/projects/{pid}/branch_sizes"}
        with httpx.Client(base_url=env.api_url, timeout=60,
                          headers={"Authorization": f"Bearer {env.api_key}"}) as c:
            for _ in range(args.loads):
                for name, path in paths.items():
                    t0 = time.perf_counter()
                    assert c.get(path).status_code == 200
                    calls[name].append(time.perf_counter() - t0)

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=["--no-sandbox", "--disable-gpu",
                                              "--disable-dev-shm-usage"])
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.goto(url)
            page.get_by_test_id("signin-key").fill(env.api_key)
            t0 = time.perf_counter()
            page.get_by_test_id("signin-submit").click()
            page.wait_for_selector(last, state="attached", timeout=60_000)
            first = time.perf_counter() - t0
            rows = page.locator("[data-testid=branch-tree] [data-id]").count()
            assert rows == args.branches + 1, rows
            loads = []
            for _ in range(args.loads):
                t0 = time.perf_counter()
                page.reload()
                page.wait_for_selector(last, state="attached", timeout=60_000)
                loads.append(time.perf_counter() - t0)
            browser.close()
    shutil.rmtree(home, ignore_errors=True)
    home.with_name(home.name + ".stdout").unlink(missing_ok=True)

    n = args.branches + 1
    body_md = "\n".join([
        "## Console",
        "",
        f"The branches page of a project with {n} branches ({args.branches} metadata rows "
        "under the default branch, two levels deep), in headless Chromium via Playwright; "
        "time from navigation until the last row is in the tree (all rows are drawn in one "
        "pass: no paging, no per-row requests).",
        "",
        table(["measure", "value"], [
            ["first load after sign-in (empty cache)", f"{first * 1000:.0f} ms"],
            [f"page load p50 ({args.loads} reloads)", _ms(loads)],
            ["page load p95", f"{p95(loads) * 1000:.0f} ms"],
            [f"`GET .../branches` ({n} branches) p50", _ms(calls["branches"])],
            ["`GET .../endpoints` p50", _ms(calls["endpoints"])],
            ["`GET /console/.../branch_sizes` p50", _ms(calls["branch sizes"])],
        ]),
        "",
        "Target: under a couple of seconds on a laptop with 1,000 branches.",
    ])
    write_section("console", "python bench/console.py", body_md)
    print(body_md)


if __name__ == "__main__":
    main()
