"""app.errors: every exception class to a status, in each protocol, with the request id."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app import errors, exceptions
from app.main import create_app
from app.settings import Settings
from core.errors import (
    BatchTooLargeError,
    CoreError,
    EmptyImageError,
    ImageDecodeError,
    InputError,
    LimitExceededError,
    UnknownActivationError,
    UnsupportedImageError,
    WeightsError,
)

CASES: list[tuple[BaseException, int, str]] = [
    (InputError("bad x", loc=("x",)), 422, "invalid-input"),
    (LimitExceededError("too many points"), 413, "limit-exceeded"),
    (BatchTooLargeError("too many rows"), 413, "batch-too-large"),
    (EmptyImageError("no ink"), 422, "empty-image"),
    (ImageDecodeError("junk"), 400, "undecodable-image"),
    (UnsupportedImageError("TIFF"), 415, "unsupported-image-type"),
    (UnknownActivationError("nope", ["relu"]), 404, "unknown-activation"),
    (exceptions.MalformedBodyError("not JSON"), 400, "malformed-body"),
    (exceptions.InvalidRequestError("no x"), 422, "invalid-input"),
    (exceptions.UnsupportedMediaTypeError("text/plain"), 415, "unsupported-media-type"),
    (exceptions.NotFoundError("no such model"), 404, "not-found"),
    (exceptions.BodyTooLargeError("too big"), 413, "body-too-large"),
    (exceptions.BodyTimeoutError("too slow"), 408, "body-timeout"),
    (exceptions.BusyError("busy"), 503, "unavailable"),
    (exceptions.NotReadyError("loading"), 503, "not-ready"),
    (WeightsError("a bad file, not the client's fault"), 500, "internal-error"),
    (CoreError("core went wrong"), 500, "internal-error"),
    (RuntimeError("secret internal state 0xdeadbeef"), 500, "internal-error"),
]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    for prefix in ("", "/v2"):

        @app.get(prefix + "/raise/{index}")
        async def _raise(index: int) -> None:
            raise CASES[index][0]

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize(("index", "case"), list(enumerate(CASES)))
def test_problem_json_outside_v2(client: TestClient, index: int, case: tuple) -> None:
    exc, status, type_ = case
    r = client.get(f"/raise/{index}", headers={"x-request-id": f"req-{index}"})
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-request-id"] == f"req-{index}"
    body = r.json()
    assert body["type"] == f"/problems/{type_}"
    assert body["status"] == status
    assert body["request_id"] == f"req-{index}"
    if status == 500:
        # The cause stays in the log; the client gets the id to quote.
        assert body["detail"] == (
            f"internal error; quote request id req-{index} when reporting it"
        )
        assert "0xdeadbeef" not in r.text
    else:
        assert body["detail"] == str(exc)
    if status == 503:
        assert r.headers["retry-after"] == "1"
    if isinstance(exc, InputError):
        assert body["errors"][0]["loc"][0] == "body"
    if isinstance(exc, UnknownActivationError):
        assert body["valid"] == ["relu"]


@pytest.mark.parametrize(("index", "case"), list(enumerate(CASES)))
def test_v2_error_bodies_under_v2(client: TestClient, index: int, case: tuple) -> None:
    exc, status, _ = case
    r = client.get(f"/v2/raise/{index}", headers={"x-request-id": f"v2-{index}"})
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"] == f"v2-{index}"
    body = r.json()
    assert set(body) == {"error"}
    if status == 500:
        assert "v2-" + str(index) in body["error"]
        assert "0xdeadbeef" not in r.text
    else:
        assert body["error"] == str(exc)


def test_a_500_is_logged_with_its_request_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    index = len(CASES) - 1
    with caplog.at_level("ERROR", logger="mnist_serve"):
        r = client.get(f"/raise/{index}", headers={"x-request-id": "trace-me"})
    assert r.status_code == 500
    [record] = [rec for rec in caplog.records if "trace-me" in rec.getMessage()]
    assert record.exc_info is not None
    assert "0xdeadbeef" in str(record.exc_info[1])


def test_router_errors_use_the_protocol_of_the_path(client: TestClient) -> None:
    r = client.get("/nowhere")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == "no route for /nowhere"
    r = client.get("/v2/nowhere")
    assert r.status_code == 404
    assert r.json() == {"error": "no route for /v2/nowhere"}
    r = client.delete("/predict")
    assert r.status_code == 405
    assert "allowed: POST" in r.json()["detail"]
    r = client.get("/v2/models/mnist/infer")
    assert r.status_code == 405
    assert set(r.json()) == {"error"}


def test_validation_errors_say_what_to_do(client: TestClient) -> None:
    r = client.post("/predict", json={"y": 1, "normalize": "yes"})
    body = r.json()
    assert r.status_code == 422
    assert body["detail"] == (
        "field x is required; normalize must be true or false; unknown field y"
    )
    assert [e["loc"] for e in body["errors"]] == [
        ["body", "x"],
        ["body", "normalize"],
        ["body", "y"],
    ]
    r = client.get("/activations/relu?num=0&start=0&stop=1")
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["query", "num"]


def test_details_are_clipped() -> None:
    failure = errors.Failure(422, "invalid-input", "x" * 5000)
    body, _ = errors.render(failure, errors.Protocol.PROBLEM, None)
    assert len(body) < errors.MAX_DETAIL + 200
    assert b"more characters" in body
