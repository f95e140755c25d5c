"""The service inside the container answers like the one outside: /predict in
JSON, PNG and raw bytes, the V2 protocol through tritonclient over HTTP and
gRPC, the web page."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import httpx
import numpy as np
import pytest

import weights
from core.weights import load_network
from tests.container.conftest import Container, needs_image

pytestmark = needs_image()

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# The image serves the shipped weights; the same file, loaded here, is the reference.
NETWORK = load_network(weights.shipped() / "mnist" / "1" / "weights.pkl")


@pytest.fixture(scope="module")
def client(container: Container):
    with httpx.Client(base_url=container.url, timeout=30) as c:
        yield c


def test_predict_json(client):
    body = (EXAMPLES / "one.json").read_bytes()
    r = client.post(
        "/predict", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["label"] == 1
    x = np.asarray(json.loads(body)["x"], np.float32)
    np.testing.assert_allclose(
        answer["probabilities"], NETWORK.forward(x)[0], atol=1e-6
    )


def test_predict_png(client):
    r = client.post(
        "/predict",
        content=(EXAMPLES / "seven.png").read_bytes(),
        headers={"content-type": "image/png"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["label"] == 7


def test_predict_octet_stream(client):
    raw = (EXAMPLES / "batch.u8").read_bytes()
    r = client.post(
        "/predict", content=raw, headers={"content-type": "application/octet-stream"}
    )
    assert r.status_code == 200, r.text
    x = np.frombuffer(raw, np.uint8).reshape(-1, 784).astype(np.float32) / 255
    expected = NETWORK.forward(x)
    assert r.json()["labels"] == expected.argmax(axis=1).tolist()
    np.testing.assert_allclose(r.json()["probabilities"], expected, atol=1e-6)


def test_bad_input_is_a_4xx_problem(client):
    r = client.post("/predict", json={"x": [0.5] * 783})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


def test_v2_with_tritonclient(container: Container, client):
    triton = pytest.importorskip("tritonclient.http")
    tc = triton.InferenceServerClient(container.url.removeprefix("http://"))
    try:
        assert tc.is_server_live()
        assert tc.is_server_ready()
        assert tc.is_model_ready("mnist")
        metadata = tc.get_server_metadata()
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        assert metadata["name"] == "mnist-serve"
        assert metadata["version"] == project["version"]
        x = np.random.default_rng(3).random((5, 784), dtype=np.float32)
        tensor = triton.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=True)
        result = tc.infer("mnist", [tensor])
        r = client.post("/predict", json={"x": x.tolist()})
        np.testing.assert_array_equal(result.as_numpy("label"), r.json()["labels"])
        np.testing.assert_allclose(
            result.as_numpy("probabilities"), r.json()["probabilities"], atol=1e-6
        )
    finally:
        tc.close()


def test_grpc_with_tritonclient(container: Container, client):
    grpc = pytest.importorskip("tritonclient.grpc")
    tc = grpc.InferenceServerClient(container.grpc)
    try:
        assert tc.is_server_live()
        assert tc.is_server_ready()
        assert tc.is_model_ready("mnist")
        x = np.random.default_rng(4).random((3, 784), dtype=np.float32)
        tensor = grpc.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = tc.infer("mnist", [tensor])
        r = client.post("/predict", json={"x": x.tolist()})
        np.testing.assert_array_equal(result.as_numpy("label"), r.json()["labels"])
    finally:
        tc.close()


def test_web_page(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<canvas" in page.text
    assert "content-security-policy" in page.headers
    # The page's own script and style come from the image too (no CDN).
    for asset in ("app.js", "style.css"):
        assert asset in page.text
        r = client.get(f"/static/{asset}")
        assert r.status_code == 200, asset
