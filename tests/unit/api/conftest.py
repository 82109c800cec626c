"""The API over real control services on a temporary home (no computes started)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    # starlette warns at import that httpx-based TestClient is deprecated; it still works.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from argon.api import create_app
from argon.control import build_services
from argon.settings import Settings


@pytest.fixture
def services(argon_tmp: Path) -> Any:
    return build_services(Settings(home=argon_tmp / "home"))


@pytest.fixture
def client(services: Any) -> Iterator[TestClient]:
    with TestClient(create_app(services), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def auth(services: Any) -> dict[str, str]:
    _, secret = services.api_keys.create("unit")
    return {"Authorization": f"Bearer {secret}"}
