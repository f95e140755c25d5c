from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.schemas import PredictBatch, PredictSingle
from core.network import Network
from core.weights import load_network
from tests.app.conftest import assert_problem


@pytest.fixture
def network(settings) -> Network:
    return load_network(settings.weights)


def test_single_flat(
    client: TestClient, network: Network, rng: np.random.Generator
) -> None:
    x = rng.random(784).astype(np.float32)
    r = client.post("/predict", json={"x": x.tolist()})
    assert r.status_code == 200
    body = PredictSingle.model_validate(r.json())
    expected = network.forward(x)[0]
    np.testing.assert_allclose(body.probabilities, expected, rtol=1e-6)
    assert body.label == int(expected.argmax())
    assert abs(sum(body.probabilities) - 1) < 1e-5
    assert body.input is None


def test_single_square_and_batch_forms_agree(
    client: TestClient, network: Network, rng: np.random.Generator
) -> None:
    x = rng.random((3, 784)).astype(np.float32)
    square = client.post("/predict", json={"x": x[0].reshape(28, 28).tolist()}).json()
    assert square["label"] == int(network.predict(x[0])[0])
    batch = PredictBatch.model_validate(
        client.post("/predict", json={"x": x.tolist()}).json()
    )
    assert batch.labels == network.predict(x).tolist()
    batch28 = client.post("/predict", json={"x": x.reshape(3, 28, 28).tolist()}).json()
    assert batch28 == batch.model_dump(exclude_none=True)
    one = client.post("/predict", json={"x": [x[0].tolist()]}).json()
    assert one["labels"] == [square["label"]]
    assert len(one["probabilities"]) == 1


def test_normalize_divides_by_255(
    client: TestClient, network: Network, rng: np.random.Generator
) -> None:
    pixels = rng.integers(0, 256, 784)
    raw = client.post("/predict", json={"x": pixels.tolist(), "normalize": True}).json()
    scaled = client.post("/predict", json={"x": (pixels / 255).tolist()}).json()
    np.testing.assert_allclose(raw["probabilities"], scaled["probabilities"], rtol=1e-6)


def test_octet_stream_batch(
    client: TestClient, network: Network, rng: np.random.Generator
) -> None:
    pixels = rng.integers(0, 256, (5, 784), dtype=np.uint8)
    r = client.post(
        "/predict",
        content=pixels.tobytes(),
        headers={"content-type": "application/octet-stream"},
    )
    assert r.status_code == 200
    body = PredictBatch.model_validate(r.json())
    assert body.labels == network.predict(pixels.astype(np.float32) / 255).tolist()


def test_return_input(client: TestClient, rng: np.random.Generator) -> None:
    x = rng.random(784).astype(np.float32)
    body = client.post("/predict?return_input=true", json={"x": x.tolist()}).json()
    np.testing.assert_allclose(np.array(body["input"]).ravel(), x, rtol=1e-6)


@pytest.mark.parametrize(
    ("body", "status", "contains"),
    [
        (b'{"x": [NaN]}', 422, "non-finite"),
        (b'{"x": [Infinity, 0]}', 422, "non-finite"),
        (b'{"x": [-Infinity]}', 422, "non-finite"),
        (b'{"x": [1e999]}', 422, "non-finite"),
        (b'{"x": ', 400, "not valid JSON"),
        (b"", 400, "not valid JSON"),
        (b"[1, 2]", 422, "JSON object"),
        (b'{"x": [0.5, 0.5]}', 422, "shape [2]"),
        (b'{"x": [[0.5, 0.5], [0.5]]}', 422, "ragged"),
        (b'{"x": []}', 422, "empty"),
        (b'{"y": 1}', 422, "unknown field"),
        (b'{"normalize": true}', 422, "x is required"),
        (b'{"x": "abc"}', 422, "only numbers"),
        (b'{"x": [' + b'"0",' * 783 + b'"0"]}', 422, "only numbers"),
        (b'{"x": [' + b"true," * 783 + b"true]}", 422, "only numbers"),
        (b'{"x": [1,' + b"0," * 782 + b"false]}", 422, "only numbers"),
        (b'{"x": [' + b"null," * 783 + b"null]}", 422, "only numbers"),
        (b'{"x": [' + b"2," * 783 + b"2]}", 422, "outside [0, 1] at x[0]"),
        (b'{"x": [' + b"0," * 783 + b"-1]}", 422, "outside [0, 1] at x[783]"),
        (
            b'{"x": [' + b"0," * 783 + b'256], "normalize": true}',
            422,
            "outside [0, 255]",
        ),
        (
            b'{"x": [' + b"0," * 783 + b'1], "normalize": "yes"}',
            422,
            "normalize must be",
        ),
        (b"[" * 5000 + b"]" * 5000, 400, "not valid JSON"),
        (b'{"x": ' + b"[" * 100 + b"0" + b"]" * 100 + b"}", 422, "deeper than 64"),
    ],
)
def test_bad_json_is_a_problem(
    client: TestClient, body: bytes, status: int, contains: str
) -> None:
    r = client.post(
        "/predict", content=body, headers={"content-type": "application/json"}
    )
    problem = assert_problem(r, status, contains)
    assert "NaN" not in r.text
    assert "Infinity" not in r.text
    assert "1e999" not in r.text
    if status == 422:
        assert problem["errors"][0]["loc"][0] == "body"


def test_batch_over_the_limit(client: TestClient) -> None:
    r = client.post("/predict", json={"x": [[0.0] * 784] * 65})
    assert_problem(r, 413, "over the limit of 64")
    r = client.post(
        "/predict",
        content=bytes(784 * 65),
        headers={"content-type": "application/octet-stream"},
    )
    assert_problem(r, 413, "over the limit of 64")


@pytest.mark.parametrize("size", [0, 1, 783, 785])
def test_octet_stream_wrong_length(client: TestClient, size: int) -> None:
    r = client.post(
        "/predict",
        content=bytes(size),
        headers={"content-type": "application/octet-stream"},
    )
    assert_problem(r, 422, f"got {size} bytes")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "", "application/x-www-form-urlencoded"],
)
def test_unsupported_content_type(client: TestClient, content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/predict", content=b"x=1", headers=headers)
    assert_problem(r, 415, "unsupported Content-Type")


def test_body_over_the_limit_is_refused_before_reading(weights_file) -> None:
    from app.main import create_app
    from app.settings import Settings

    with TestClient(
        create_app(Settings(weights=weights_file, max_body_bytes=1000))
    ) as c:
        r = c.post(
            "/predict",
            content=b"0" * 1001,
            headers={"content-type": "application/json"},
        )
        assert_problem(r, 413, "over the limit of 1000 bytes")
        assert r.headers["connection"] == "close"

        def chunks():  # no Content-Length: counted while streaming
            for _ in range(20):
                yield b"0" * 100

        r = c.post(
            "/predict", content=chunks(), headers={"content-type": "application/json"}
        )
        assert_problem(r, 413, "over the limit of 1000 bytes")


def test_book_weights_through_json_and_octet_stream_give_9352(
    book_client: TestClient, mnist_test
) -> None:
    images, labels = mnist_test
    correct_json = correct_raw = 0
    for start in range(0, 10000, 1000):
        chunk = images[start : start + 1000]
        x = (chunk.reshape(-1, 784).astype(np.float32) / 255).tolist()
        r = book_client.post("/predict", json={"x": x})
        assert r.status_code == 200
        correct_json += int(
            (np.array(r.json()["labels"]) == labels[start : start + 1000]).sum()
        )
        r = book_client.post(
            "/predict",
            content=chunk.tobytes(),
            headers={"content-type": "application/octet-stream"},
        )
        correct_raw += int(
            (np.array(r.json()["labels"]) == labels[start : start + 1000]).sum()
        )
    assert (correct_json, correct_raw) == (9352, 9352)
