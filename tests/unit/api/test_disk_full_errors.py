"""A full disk reaching the API is a 507 with Neon's error shape, never a 500."""

from __future__ import annotations

import errno
import sqlite3

import pytest
import sqlalchemy
from fastapi import FastAPI
from fastapi.testclient import TestClient

from argon.api.errors import RequestIdMiddleware, install_error_handlers
from argon.errors import ArgonError, InsufficientStorage


def _sqlite_full() -> Exception:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13
    return sqlalchemy.exc.OperationalError("COMMIT", None, full)


def _wrapped_enospc() -> Exception:
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as e:
        err = ArgonError("branch creation failed and was rolled back")
        err.__cause__ = e
        return err


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)

    @app.get("/sqlite-full")
    def sqlite_full() -> None:
        raise _sqlite_full()

    @app.get("/wrapped")
    def wrapped() -> None:
        raise _wrapped_enospc()

    @app.get("/refused")
    def refused() -> None:
        raise InsufficientStorage("not enough free space to create branch x: ...")

    @app.get("/bug")
    def bug() -> None:
        raise RuntimeError("a real bug")

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("path", ["/sqlite-full", "/wrapped"])
def test_disk_full_causes_are_507(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 507
    body = r.json()
    assert body["code"] == "INSUFFICIENT_STORAGE"
    assert "full" in body["message"] and "then retry" in body["message"]
    assert body["request_id"] == r.headers["x-request-id"]


def test_the_early_refusal_keeps_its_own_message(client: TestClient) -> None:
    r = client.get("/refused")
    assert r.status_code == 507
    assert r.json()["message"].startswith("not enough free space to create branch x")


def test_other_failures_stay_500(client: TestClient) -> None:
    assert client.get("/bug").status_code == 500
