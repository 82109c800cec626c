"""API integration tests run against a real Argon (``argon_env``); each JSON answer is
checked against Neon's schema when the npm package with the spec is installed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.compat.neon_spec import SPEC_PATH, neon_spec
from tests.fixtures.argon_env import ArgonEnv, wait_operations

__all__ = ["Call", "wait_operations"]   # the API tests import both from here

Call = Callable[..., httpx.Response]


@pytest.fixture
def api(argon_env: ArgonEnv) -> Call:
    """``api(method, path, **kw)`` on the real API; answers are contract-checked."""
    spec = neon_spec() if SPEC_PATH.exists() else None

    def call(method: str, path: str, **kw: Any) -> httpx.Response:
        r = argon_env.api(method, path, **kw)
        if spec is not None and "json" in r.headers.get("content-type", ""):
            spec.validate(method, urlsplit(path).path, r.status_code, r.json())
        return r

    return call
