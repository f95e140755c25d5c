"""POST /explain, and the page (GET /, /static/...) that uses it."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.schemas import ExplainResponse
from core.explain import explain
from core.network import Network
from core.weights import load_network
from tests.app.conftest import assert_problem


@pytest.fixture
def network(settings) -> Network:
    return load_network(settings.weights)


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def stroke_on_white() -> np.ndarray:
    """Dark vertical stroke on a white 200x200 canvas, like the page's drawing."""
    image = np.full((200, 200), 255, dtype=np.uint8)
    image[30:170, 92:108] = 0
    return image


def test_json_image(
    client: TestClient, network: Network, rng: np.random.Generator
) -> None:
    x = rng.random(784).astype(np.float32)
    r = client.post("/explain", json={"x": x.reshape(28, 28).tolist()})
    assert r.status_code == 200, r.text
    body = ExplainResponse.model_validate(r.json())
    assert [len(h) for h in body.hidden] == [50, 100]
    assert len(body.logits) == 10
    assert np.shape(body.saliency) == (28, 28)
    np.testing.assert_array_equal(np.array(body.input, dtype=np.float32).ravel(), x)
    # Same answer as /predict, and the same numbers as core.explain.
    predicted = client.post("/predict", json={"x": x.tolist()}).json()
    assert body.label == predicted["label"] == body.target
    np.testing.assert_allclose(
        body.probabilities, predicted["probabilities"], atol=1e-6
    )
    expected = explain(network, x)
    np.testing.assert_allclose(np.array(body.saliency).ravel(), expected.saliency[0])
    np.testing.assert_allclose(body.hidden[1], expected.hidden[1][0])
    np.testing.assert_allclose(body.logits, expected.logits[0])


def test_saliency_matches_finite_differences_of_predict(
    client: TestClient, rng: np.random.Generator
) -> None:
    # The gradient the page shows predicts how /predict's probability moves
    # when one pixel changes (float32 on the server: a coarse step).
    x = rng.uniform(0.1, 0.9, 784)
    body = client.post("/explain", json={"x": x.tolist()}).json()
    target = body["target"]
    saliency = np.array(body["saliency"]).ravel()
    eps = 0.01
    for pixel in np.argsort(-np.abs(saliency))[:4]:
        up, down = x.copy(), x.copy()
        up[pixel] += eps
        down[pixel] -= eps
        pu, pd = (
            client.post("/predict", json={"x": v.tolist()}).json()["probabilities"]
            for v in (up, down)
        )
        numeric = (pu[target] - pd[target]) / (2 * eps)
        assert numeric == pytest.approx(saliency[pixel], rel=0.05)


def test_target_chooses_the_class(
    client: TestClient, network: Network, rng: np.random.Generator
) -> None:
    x = rng.random(784).astype(np.float32)
    default = client.post("/explain", json={"x": x.tolist()}).json()
    other = (default["label"] + 1) % 10
    r = client.post(f"/explain?target={other}", json={"x": x.tolist()})
    assert r.status_code == 200
    body = r.json()
    assert body["target"] == other
    assert body["label"] == default["label"]
    np.testing.assert_allclose(
        np.array(body["saliency"]).ravel(), explain(network, x, other).saliency[0]
    )
    assert_problem(client.post("/explain?target=10", json={"x": x.tolist()}), 422)
    assert_problem(client.post("/explain?target=a", json={"x": x.tolist()}), 422)


def test_png_stroke_with_book_weights(book_client: TestClient) -> None:
    data = png(stroke_on_white())
    headers = {"content-type": "image/png"}
    r = book_client.post("/explain", content=data, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label"] == 1
    seen = book_client.post(
        "/predict?return_input=true", content=data, headers=headers
    ).json()
    np.testing.assert_allclose(body["input"], seen["input"])
    # Saliency is strongest where the stroke is, not in the corners.
    saliency = np.abs(np.array(body["saliency"]))
    assert saliency[8:20, 10:18].mean() > saliency[:4, :4].mean()


def test_multipart_and_octet_stream(
    client: TestClient, network: Network, rng: np.random.Generator
) -> None:
    # An MNIST digit in all respects (see core.images.is_mnist_like): a
    # stroke 20 pixels tall with its mass at (14, 14), so both paths agree.
    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[4:24, 13:16] = rng.integers(128, 256, (20, 3), dtype=np.uint8)
    pixels[4:24, 13:16:2] //= 2
    r = client.post("/explain", files={"file": ("d.png", png(pixels), "image/png")})
    assert r.status_code == 200, r.text
    raw = client.post(
        "/explain",
        content=pixels.tobytes(),
        headers={"content-type": "application/octet-stream"},
    )
    assert raw.status_code == 200
    assert raw.json() == r.json()
    assert raw.json()["label"] == int(network.predict(pixels.ravel() / 255)[0])


def test_more_than_one_image_is_422(client: TestClient) -> None:
    two = np.zeros((2, 784)).tolist()
    assert_problem(client.post("/explain", json={"x": two}), 422, "one image")
    assert_problem(
        client.post(
            "/explain",
            content=bytes(2 * 784),
            headers={"content-type": "application/octet-stream"},
        ),
        422,
        "one image",
    )
    image = png(stroke_on_white())
    files = [
        ("file", ("a.png", image, "image/png")),
        ("file", ("b.png", image, "image/png")),
    ]
    assert_problem(client.post("/explain", files=files), 422, "one image")


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b'{"x": [1, 2, 3]}', "application/json", 422),
        (b"hello", "text/plain", 415),
        (b"\x89PNG\r\n\x1a\nbroken", "image/png", 400),
        (bytes(783), "application/octet-stream", 422),
    ],
)
def test_bad_bodies_are_problems(
    client: TestClient, content: bytes, content_type: str, status: int
) -> None:
    r = client.post("/explain", content=content, headers={"content-type": content_type})
    assert_problem(r, status)


def test_blank_drawing_is_a_clear_422(client: TestClient) -> None:
    blank = png(np.full((200, 200), 255, dtype=np.uint8))
    r = client.post("/explain", content=blank, headers={"content-type": "image/png"})
    body = assert_problem(r, 422)
    assert body["type"] == "/problems/empty-image"


def test_openapi_documents_explain(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/explain"]["post"]
    assert {"application/json", "image/png", "multipart/form-data"} <= set(
        op["requestBody"]["content"]
    )
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/ExplainResponse")
    fields = spec["components"]["schemas"]["ExplainResponse"]["properties"]
    assert {"label", "probabilities", "logits", "hidden", "saliency", "input"} <= set(
        fields
    )
    assert {p["name"] for p in op["parameters"]} == {
        "preprocess",
        "target",
        "model",
        "version",
    }
    assert {"400", "413", "415", "422"} <= set(op["responses"])
    assert "/" not in spec["paths"]


def test_page_has_the_controls_and_a_strict_csp(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert "unsafe" not in csp
    html = r.text
    for element_id in (
        "canvas",
        "clear",
        "predict",
        "label",
        "probabilities",
        "upload",
    ):
        assert f'id="{element_id}"' in html
    # No inline script, style element, style attribute or event handler.
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert "<style" not in html
    assert re.search(r"\sstyle=|\son[a-z]+=", html) is None
    # Everything it loads is served from here.
    for url in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert "http://" not in html
    assert "https://" not in html


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("app.js", "text/javascript"),
        ("models.js", "text/javascript"),
        ("style.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_static_files(client: TestClient, name: str, media_type: str) -> None:
    r = client.get(f"/static/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(media_type)
    again = client.get(f"/static/{name}", headers={"if-none-match": r.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize(
    "path", ["/static/nope.js", "/static/..%2fmain.py", "/static/__init__.py"]
)
def test_unknown_static_file_is_a_404_problem(client: TestClient, path: str) -> None:
    assert_problem(client.get(path), 404)
