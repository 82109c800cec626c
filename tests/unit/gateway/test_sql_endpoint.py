from __future__ import annotations

import pytest

from argon.errors import InvalidInput
from argon.gateway import sql_endpoint

PORTS = {41000: ("ep-cool-sun-12345678", False), 41001: ("ep-cool-sun-12345678", True)}


@pytest.mark.parametrize("host,port,options,expected", [
    ("ep-cool-sun-12345678.db.example.com", None, None, "ep-cool-sun-12345678"),
    ("ep-cool-sun-12345678-pooler.db.example.com", None, None, "ep-cool-sun-12345678"),
    ("127.0.0.1", 41000, None, "ep-cool-sun-12345678"),
    ("127.0.0.1", 41001, None, "ep-cool-sun-12345678"),
    ("127.0.0.1", 5432, "endpoint=ep-other-one-abcdefgh", "ep-other-one-abcdefgh"),
    ("127.0.0.1", 5432, "-c x=1 project=ep-other-one-abcdefgh", "ep-other-one-abcdefgh"),
])
def test_sql_endpoint_forms(host: str, port: int | None, options: str | None,
                            expected: str) -> None:
    assert sql_endpoint(host, port, options, PORTS.get) == expected


def test_no_endpoint_tells_how_to_pass_it() -> None:
    with pytest.raises(InvalidInput, match="options=endpoint"):
        sql_endpoint("127.0.0.1", 5432, None, PORTS.get)
