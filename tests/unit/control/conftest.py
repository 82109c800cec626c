"""Two coordinators on one real Postgres metadata database: two Argons' views."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from argon.control.coordinator import PostgresCoordinator, coordinator_for
from argon.meta.db import open_database
from tests.fixtures.metadata_pg import MetadataPg


@pytest.fixture
def meta_url(metadata_pg: MetadataPg) -> str:
    return metadata_pg.new_database("coord")


@pytest.fixture
def engines(meta_url: str) -> Iterator[tuple[Engine, Engine]]:
    a, b = open_database(meta_url), open_database(meta_url)
    yield a, b
    a.dispose()
    b.dispose()


@pytest.fixture
def pair(engines: tuple[Engine, Engine]) -> Iterator[tuple[PostgresCoordinator,
                                                            PostgresCoordinator]]:
    a, b = (coordinator_for(e) for e in engines)
    assert isinstance(a, PostgresCoordinator) and isinstance(b, PostgresCoordinator)
    yield a, b
    a.close()
    b.close()
