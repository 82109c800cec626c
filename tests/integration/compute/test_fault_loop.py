"""A bounded fault loop: computes killed with SIGKILL while two writers insert rows
through the proxy, one direct and one pooled (PgBouncer, transaction mode).

No acknowledged row may be lost, and both writers must resume after every fault: the
reconciler starts a compute that died while in use again at once, on the same port,
and PgBouncer (retrying its login every second) finds it there.  The outage bound here
is generous; ``bench/fault_outage.py`` measures the real figure.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.fixtures.argon_env import ArgonEnv
from tests.fixtures.common import no_current_pgbouncer
from tests.fixtures.faults import start_write_load

FAULTS = 30
OUTAGE_BOUND_SECONDS = 15.0

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="kills computes run by the Postgres "
                       "account: needs root"),
    pytest.mark.skipif(no_current_pgbouncer() is not None, reason=str(no_current_pgbouncer())),
]


def test_kill9_of_computes_loses_no_acknowledged_row_and_both_writers_resume(
        fresh_argon_env: ArgonEnv) -> None:
    load = start_write_load(fresh_argon_env, "faults")
    outages: dict[str, list[float]] = {w.name: [] for w in load.writers}
    try:
        for _ in range(FAULTS):
            killed_at = load.fault(timeout=60)
            time.sleep(0.2)
            for w in load.writers:
                outages[w.name].append(w.longest_gap(killed_at, time.monotonic()))
    finally:
        load.stop()
    stored = load.stored_ids()
    for w in load.writers:
        assert len(w.acked) > FAULTS, f"{w.name} wrote too little: {w.errors[-5:]}"
        lost = set(w.acked) - stored
        assert not lost, f"{w.name}: {len(lost)} acknowledged rows lost, e.g. {sorted(lost)[:5]}"
        longest = max(outages[w.name])
        assert longest < OUTAGE_BOUND_SECONDS, \
            f"{w.name}: longest write outage {longest:.1f} s ({outages[w.name]})"
