"""How Argon splits its descriptor limit between HTTP clients and the reserve kept for
Postgres clients (the numbers docs/architecture.md states)."""

from __future__ import annotations

import pytest

from argon.descriptors import DescriptorBudget


@pytest.mark.parametrize("limit, reserve, http", [
    (524_288, 131_072, 196_608),   # Debian's hard limit, after `argon start` raises to it
    (1_024, 256, 384),             # the usual soft limit, when the hard one is no higher
    (512, 256, 128),               # tests/integration/proxy/test_slow_clients.py
    (64, 32, 16),                  # tiny: never fewer than 16 HTTP connections
])
def test_budget(limit: int, reserve: int, http: int) -> None:
    budget = DescriptorBudget.for_limit(limit)
    assert (budget.reserve, budget.http_connections) == (reserve, http)
    assert budget.reserve + 2 * budget.http_connections <= max(limit, 64)
