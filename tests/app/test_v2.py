"""Open Inference Protocol (KServe V2) endpoints, in process."""

from __future__ import annotations

import gzip

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from app.codecs.v2 import HEADER_LENGTH
from app.main import create_app

METADATA = {
    "name": "mnist",
    "versions": ["1"],
    "platform": "numpy",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 784]}],
    "outputs": [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
        {"name": "label", "datatype": "INT64", "shape": [-1]},
    ],
}


def v2_error(response, status: int, contains: str = "") -> str:
    """The response is a V2 error body {"error": "..."} with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str)
    assert contains in body["error"], body["error"]
    assert response.headers["x-request-id"]
    return body["error"]


def tensor(x, datatype: str = "FP32", **extra) -> dict:
    x = np.asarray(x)
    return {
        "name": "input",
        "shape": list(x.shape),
        "datatype": datatype,
        "data": x.tolist(),
        **extra,
    }


def binary_request(
    x: np.ndarray, datatype: str = "FP32", outputs=None, **parameters
) -> tuple[bytes, dict[str, str]]:
    raw = x.astype("<f4" if datatype == "FP32" else np.uint8).tobytes()
    header: dict = {
        "inputs": [
            {
                "name": "input",
                "shape": list(x.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        ]
    }
    if outputs is not None:
        header["outputs"] = outputs
    if parameters:
        header["parameters"] = parameters
    head = orjson.dumps(header)
    return head + raw, {HEADER_LENGTH: str(len(head))}


def decode(response) -> dict[str, np.ndarray]:
    """Outputs of an infer answer, JSON or binary, by name."""
    assert response.status_code == 200, response.text
    length = response.headers.get(HEADER_LENGTH)
    if length is None:
        assert response.headers["content-type"] == "application/json"
        header, rest = response.json(), b""
    else:
        assert response.headers["content-type"] == "application/octet-stream"
        header = orjson.loads(response.content[: int(length)])
        rest = response.content[int(length) :]
    assert header["model_name"] == "mnist"
    assert header["model_version"] == "1"
    out, offset = {}, 0
    for t in header["outputs"]:
        dtype = {"FP32": "<f4", "INT64": "<i8"}[t["datatype"]]
        size = t.get("parameters", {}).get("binary_data_size")
        if size is None:
            array = np.asarray(t["data"], dtype=dtype)
        else:
            array = np.frombuffer(rest[offset : offset + size], dtype=dtype)
            offset += size
        out[t["name"]] = array.reshape(t["shape"])
    assert offset == len(rest)
    return out


def predict(client: TestClient, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.dtype == np.uint8:
        r = client.post(
            "/predict",
            content=x.tobytes(),
            headers={"content-type": "application/octet-stream"},
        )
    else:
        r = client.post("/predict", json={"x": x.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    return (
        np.asarray(body["probabilities"], dtype=np.float32),
        np.asarray(body["labels"]),
    )


@pytest.fixture
def images(rng) -> np.ndarray:
    return rng.random((5, 784), dtype=np.float32)


def test_server_endpoints(client):
    r = client.get("/v2")
    assert r.status_code == 200
    assert r.json() == {
        "name": "mnist-serve",
        "version": client.app.version,
        "extensions": [
            "binary_tensor_data",
            "classification",
            "model_configuration",
            "statistics",
            "model_repository",
        ],
    }
    assert client.get("/v2/health/live").json() == {"live": True}
    r = client.get("/v2/health/ready")
    assert (r.status_code, r.json()) == (200, {"ready": True})
    r = client.get("/v2/models/mnist/ready")
    assert (r.status_code, r.json()) == (200, {"name": "mnist", "ready": True})
    assert client.get("/v2/models/mnist/versions/1/ready").status_code == 200


def test_metadata(client):
    for path in ("/v2/models/mnist", "/v2/models/mnist/versions/1"):
        r = client.get(path)
        assert r.status_code == 200
        assert r.json() == METADATA


@pytest.mark.parametrize(
    ("path", "contains"),
    [
        ("/v2/models/cifar", "unknown model 'cifar'"),
        ("/v2/models/cifar/ready", "unknown model"),
        ("/v2/models/mnist/versions/2", "unknown version '2'"),
        ("/v2/models/mnist/versions/2/ready", "unknown version"),
        ("/v2/nothing/here", "no route"),
    ],
)
def test_unknown_model_or_route_is_404(client, path, contains):
    v2_error(client.get(path), 404, contains)


def test_not_ready_before_the_model_is_loaded(settings, images):
    # Without `with`, the lifespan never runs: no weights.
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    r = client.get("/v2/health/ready")
    assert (r.status_code, r.json()) == (400, {"ready": False})
    r = client.get("/v2/models/mnist/ready")
    assert (r.status_code, r.json()) == (400, {"name": "mnist", "ready": False})
    assert client.get("/v2/health/live").status_code == 200
    r = client.post("/v2/models/mnist/infer", json={"inputs": [tensor(images)]})
    v2_error(r, 503, "not loaded")
    assert r.headers["retry-after"] == "1"


def test_json_infer_equals_predict(client, images):
    r = client.post("/v2/models/mnist/infer", json={"inputs": [tensor(images)]})
    out = decode(r)
    probabilities, labels = predict(client, images)
    assert out["probabilities"].shape == (5, 10)
    assert out["label"].shape == (5,)
    np.testing.assert_array_equal(out["probabilities"], probabilities)
    np.testing.assert_array_equal(out["label"], labels)
    # Flattened data (the protocol's row-major form) gives the same answer.
    flat = tensor(images)
    flat["data"] = images.ravel().tolist()
    again = decode(client.post("/v2/models/mnist/infer", json={"inputs": [flat]}))
    np.testing.assert_array_equal(again["probabilities"], probabilities)


def test_binary_infer_equals_predict(client, images):
    body, headers = binary_request(images, binary_data_output=True)
    r = client.post("/v2/models/mnist/infer", content=body, headers=headers)
    assert int(r.headers[HEADER_LENGTH]) < len(r.content)
    out = decode(r)
    probabilities, labels = predict(client, images)
    np.testing.assert_array_equal(out["probabilities"], probabilities)
    np.testing.assert_array_equal(out["label"], labels)


def test_uint8_equals_predict_octet_stream(client, rng):
    pixels = rng.integers(0, 256, (3, 784), dtype=np.uint8)
    probabilities, labels = predict(client, pixels)
    body, headers = binary_request(pixels, "UINT8")
    binary = decode(
        client.post("/v2/models/mnist/infer", content=body, headers=headers)
    )
    as_json = decode(
        client.post(
            "/v2/models/mnist/infer", json={"inputs": [tensor(pixels, "UINT8")]}
        )
    )
    for out in (binary, as_json):
        np.testing.assert_array_equal(out["probabilities"], probabilities)
        np.testing.assert_array_equal(out["label"], labels)


def test_book_weights_fidelity(book_client, mnist_test):
    """The book's weights through V2 binary UINT8: exactly 9,352 of 10,000."""
    images, labels = mnist_test
    pixels = images.reshape(len(images), 784)
    correct = 0
    for start in range(0, len(pixels), 4000):
        chunk = pixels[start : start + 4000]
        body, headers = binary_request(chunk, "UINT8")
        out = decode(
            book_client.post("/v2/models/mnist/infer", content=body, headers=headers)
        )
        correct += int((out["label"] == labels[start : start + 4000]).sum())
    assert correct == 9352
    # And the first images equal /predict's answers, as JSON UINT8 too.
    probabilities, predicted = predict(book_client, pixels[:50])
    out = decode(
        book_client.post(
            "/v2/models/mnist/infer", json={"inputs": [tensor(pixels[:50], "UINT8")]}
        )
    )
    np.testing.assert_array_equal(out["probabilities"], probabilities)
    np.testing.assert_array_equal(out["label"], predicted)


def test_requested_outputs_and_id(client, images):
    body, headers = binary_request(
        images[:2], outputs=[{"name": "label", "parameters": {"binary_data": True}}]
    )
    r = client.post("/v2/models/mnist/infer", content=body, headers=headers)
    assert set(decode(r)) == {"label"}
    r = client.post(
        "/v2/models/mnist/infer",
        json={
            "id": "req-42",
            "inputs": [tensor(images[:2])],
            "outputs": [{"name": "probabilities"}, {"name": "label"}],
            "parameters": {"binary_data_output": True},
        },
    )
    # Request-level binary_data_output applies to outputs that do not say.
    assert r.headers["content-type"] == "application/octet-stream"
    header = orjson.loads(r.content[: int(r.headers[HEADER_LENGTH])])
    assert header["id"] == "req-42"
    assert [t["name"] for t in header["outputs"]] == ["probabilities", "label"]
    assert all("data" not in t for t in header["outputs"])


def _json(**body) -> tuple[bytes, dict[str, str]]:
    return orjson.dumps(body), {"content-type": "application/json"}


ONE = [[0.5] * 784]


@pytest.mark.parametrize(
    ("request_", "status", "contains"),
    [
        ((b"{not json", {}), 400, "not valid JSON"),
        ((b"[1, 2]", {}), 400, "must be a JSON object"),
        (
            (
                b'{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32",'
                b' "data": [NaN]}]}',
                {},
            ),
            422,
            "non-finite",
        ),
        (_json(), 422, "field inputs is required"),
        (_json(inputs=[]), 422, "inputs: List should have at least 1 item"),
        (_json(inputs=[{**tensor(ONE), "name": "x"}]), 422, "unknown input 'x'"),
        (_json(inputs=[{**tensor(ONE), "datatype": "FP64"}]), 422, "'FP64' is not"),
        (_json(inputs=[{**tensor(ONE), "shape": [1, 783]}]), 422, "shape must be"),
        (_json(inputs=[{**tensor(ONE), "shape": [0, 784]}]), 422, "n >= 1"),
        (_json(inputs=[{**tensor(ONE), "shape": [784]}]), 422, "shape must be"),
        (_json(inputs=[{**tensor(ONE), "shape": [2, 784]}]), 422, "2 images need 1568"),
        (_json(inputs=[{**tensor(ONE), "data": None}]), 422, "needs data"),
        (_json(inputs=[tensor([[1.5] * 784])]), 422, "outside [0, 1] at input[0][0]"),
        (_json(inputs=[tensor([[-0.1] + [0] * 783])]), 422, "outside [0, 1]"),
        (
            _json(inputs=[tensor([[0] * 783 + [1e300]])]),
            422,
            "non-finite number at input[0][783]",
        ),
        (_json(inputs=[tensor([[True] * 784])]), 422, "booleans"),
        (_json(inputs=[{**tensor(ONE), "data": ["a"] * 784}]), 422, "only numbers"),
        (_json(inputs=[{**tensor(ONE), "data": [[0.5] * 784, [0.5]]}]), 422, "ragged"),
        (
            _json(inputs=[tensor([[256] * 784], "UINT8")]),
            422,
            "outside [0, 255] at input[0][0]",
        ),
        (
            _json(inputs=[tensor([[0.5] * 784], "UINT8")]),
            422,
            "must hold integers in [0, 255]",
        ),
        (_json(inputs=[tensor(np.zeros((65, 784)))]), 413, "over the limit of 64"),
        (_json(inputs=[tensor(ONE)], outputs=[{"name": "logits"}]), 422, "'logits'"),
        (
            _json(
                inputs=[tensor(ONE)],
                outputs=[{"name": "label", "parameters": {"classification": 3}}],
            ),
            422,
            "classification",
        ),
        (
            _json(inputs=[tensor(ONE)], outputs=[{"name": "label"}, {"name": "label"}]),
            422,
            "twice",
        ),
        (_json(inputs=[tensor(ONE)], id=5), 422, "id must be a string"),
        (
            _json(inputs=[tensor(ONE)], parameters={"binary_data_output": "yes"}),
            422,
            "binary_data_output",
        ),
    ],
)
def test_invalid_requests(client, request_, status, contains):
    body, headers = request_
    r = client.post("/v2/models/mnist/infer", content=body, headers=headers)
    v2_error(r, status, contains)


def test_invalid_binary_requests(client, images):
    body, headers = binary_request(images[:1])
    head = int(headers[HEADER_LENGTH])
    url = "/v2/models/mnist/infer"
    v2_error(client.post(url, content=body + b"\0", headers=headers), 400, "declares")
    v2_error(client.post(url, content=body[:-4], headers=headers), 400, "declares")
    v2_error(
        client.post(url, content=body, headers={HEADER_LENGTH: str(len(body) + 1)}),
        400,
        "body has",
    )
    v2_error(
        client.post(url, content=body, headers={HEADER_LENGTH: "x"}), 400, "integer"
    )
    # No binary_data_size but bytes after the header.
    plain = orjson.dumps({"inputs": [tensor(images[:1])]})
    v2_error(
        client.post(
            url, content=plain + b"\0", headers={HEADER_LENGTH: str(len(plain))}
        ),
        400,
        "no binary_data_size",
    )
    # A declared size that does not fit the shape.
    header = orjson.loads(body[:head])
    header["inputs"][0]["parameters"]["binary_data_size"] = 100
    wrong = orjson.dumps(header)
    v2_error(
        client.post(
            url, content=wrong + body[head:], headers={HEADER_LENGTH: str(len(wrong))}
        ),
        422,
        "needs 3136 bytes",
    )
    # Non-finite and out-of-range binary floats.
    for bad, contains in ((np.nan, "non-finite"), (2.0, "outside [0, 1]")):
        x = images[:1].copy()
        x[0, 7] = bad
        b, h = binary_request(x)
        v2_error(client.post(url, content=b, headers=h), 422, f"{contains}")
    compressed = gzip.compress(body)
    v2_error(
        client.post(url, content=compressed, headers={"content-encoding": "gzip"}),
        415,
        "gzip",
    )


def test_guard_and_router_errors_are_v2_bodies(settings, images):
    small = settings.model_copy(update={"max_body_bytes": 1000})
    with TestClient(create_app(small), raise_server_exceptions=False) as client:
        r = client.post(
            "/v2/models/mnist/infer",
            json={"inputs": [tensor(images)]},
            headers={"x-request-id": "rid-1"},
        )
        v2_error(r, 413, "over the limit of 1000 bytes")
        assert r.headers["x-request-id"] == "rid-1"
        v2_error(client.get("/v2/models/mnist/infer"), 405, "not allowed")
        # Everything outside /v2 keeps RFC 9457 problem bodies.
        r = client.post("/predict", json={"x": images.tolist()})
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"


def test_openapi_documents_v2(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "/v2/models/{model_name}/infer" in paths
    assert "/v2/health/ready" in paths
