from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings


@pytest.fixture
def settings(weights_file: Path) -> Settings:
    return Settings(weights=weights_file, max_batch_size=64, max_activation_points=1000)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def book_client() -> Iterator[TestClient]:
    from tests.conftest import BOOK_WEIGHTS, require

    require(BOOK_WEIGHTS)
    with TestClient(
        create_app(Settings(weights=BOOK_WEIGHTS)), raise_server_exceptions=False
    ) as c:
        yield c


def assert_problem(response, status: int, contains: str = "") -> dict:
    """The response is an RFC 9457 problem with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    assert contains in body["detail"], body["detail"]
    return body
