"""Activations, model, health, router errors, startup and the OpenAPI schema."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.schemas import ActivationInfo, ActivationValues, ModelInfo
from app.settings import Settings
from core import catalogue
from core.errors import WeightsError
from core.weights import sha256_file
from tests.app.conftest import assert_problem
from tests.conftest import PROJECT_ROOT


def test_activation_listing(client: TestClient) -> None:
    listing = [
        ActivationInfo.model_validate(a) for a in client.get("/activations").json()
    ]
    names = [a.name for a in listing]
    assert names == [
        "identity", "step", "sigmoid", "tanh", "relu", "leaky_relu", "prelu",
        "elu", "maxout", "softmax", "gelu", "silu", "softplus",
    ]  # fmt: skip
    by_name = {a.name: a for a in listing}
    assert by_name["leaky_relu"].params == {"alpha": 0.01}
    assert by_name["maxout"].params == {"k": 2}
    assert "swish" in by_name["silu"].aliases
    assert "vanishing" in by_name["sigmoid"].notes.lower()
    assert (
        "dying" in by_name["relu"].notes.lower()
        or "dead" in by_name["relu"].notes.lower()
    )
    assert all(a.formula and a.notes for a in listing)


def test_activation_points_and_grid(client: TestClient) -> None:
    body = ActivationValues.model_validate(
        client.get("/activations/sigmoid?x=-1&x=0&x=1").json()
    )
    assert body.x == [-1.0, 0.0, 1.0]
    expected = [1 / (1 + math.exp(-v)) for v in body.x]
    np.testing.assert_allclose(body.y, expected, rtol=1e-12)
    np.testing.assert_allclose(body.dy, [s * (1 - s) for s in expected], rtol=1e-12)
    grid = client.get("/activations/relu?start=-5&stop=5&num=11").json()
    assert grid["x"] == list(np.linspace(-5, 5, 11))
    assert grid["dy"][5] == 1.0  # right-hand derivative at the kink
    assert client.get("/activations/swish?x=1").json()["name"] == "silu"
    assert client.get("/activations/LINEAR?x=1").json()["name"] == "identity"


def test_activation_params(client: TestClient) -> None:
    body = client.get("/activations/elu?x=-1&alpha=2").json()
    assert body["params"] == {"alpha": 2.0}
    assert body["y"][0] == pytest.approx(2 * (math.exp(-1) - 1))
    maxout = client.post("/activations/maxout", json={"x": [1, 5, 3, 2], "k": 2}).json()
    assert maxout["y"] == [5.0, 3.0]
    assert maxout["dy"] == [0.0, 1.0, 1.0, 0.0]
    softmax = client.post("/activations/softmax", json={"x": [1, 2, 3]}).json()
    assert sum(softmax["y"]) == pytest.approx(1.0)
    s = np.array(softmax["y"])
    np.testing.assert_allclose(softmax["dy"], s * (1 - s))


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "contains"),
    [
        ("GET", "/activations/nope?x=1", None, 404, "valid names"),
        ("GET", "/activations/sigmoid", None, 422, "give points"),
        ("GET", "/activations/sigmoid?x=nan", None, 422, "finite"),
        ("GET", "/activations/sigmoid?x=inf", None, 422, "finite"),
        ("GET", "/activations/sigmoid?x=abc", None, 422, "x"),
        ("GET", "/activations/sigmoid?x=1&start=0&stop=1", None, 422, "not both"),
        (
            "GET",
            "/activations/sigmoid?start=0&stop=1&num=1001",
            None,
            413,
            "limit of 1000",
        ),
        ("GET", "/activations/sigmoid?start=0&stop=inf", None, 422, "finite"),
        ("GET", "/activations/sigmoid?start=0&stop=1&num=0", None, 422, "num"),
        ("GET", "/activations/relu?x=1&beta=2", None, 422, "beta"),
        ("GET", "/activations/elu?x=1&alpha=abc", None, 422, "alpha"),
        ("GET", "/activations/maxout?x=1&x=2&x=3&k=2", None, 422, "multiple"),
        ("GET", "/activations/maxout?x=1&x=2&k=0", None, 422, "k"),
        ("POST", "/activations/sigmoid", {"x": [0.0] * 1001}, 413, "limit of 1000"),
        ("POST", "/activations/sigmoid", {"x": []}, 422, "x"),
        ("POST", "/activations/sigmoid", {"y": [1]}, 422, "x"),
        ("POST", "/activations/leaky_relu", {"x": [1], "alpha": "big"}, 422, "alpha"),
        ("POST", "/activations/nope", {"x": [1]}, 404, "valid names"),
        ("GET", "/activations/..%2F..%2Fetc%2Fpasswd?x=1", None, 404, ""),
        ("DELETE", "/activations/sigmoid", None, 405, "allowed"),
    ],
)
def test_activation_errors(
    client: TestClient, method: str, url: str, body: object, status: int, contains: str
) -> None:
    r = client.request(method, url, json=body)
    problem = assert_problem(r, status)
    assert (
        contains.lower()
        in (problem["detail"] + json.dumps(problem.get("errors"))).lower()
    )
    if status == 404 and "valid" in problem:
        assert problem["valid"] == catalogue.names()


def test_post_non_finite_is_422_without_echo(client: TestClient) -> None:
    r = client.post(
        "/activations/sigmoid",
        content=b'{"x": [1e999, NaN]}',
        headers={"content-type": "application/json"},
    )
    assert_problem(r, 422)
    assert "1e999" not in r.text
    assert "inf" not in r.text.lower().replace("infinite", "")


def test_model_describes_the_weights(client: TestClient, settings: Settings) -> None:
    info = ModelInfo.model_validate(client.get("/model").json())
    assert info.layers == [784, 50, 100, 10]
    assert info.activations == ["sigmoid", "sigmoid", "softmax"]
    assert info.parameters == 45360
    assert info.weights.sha256 == sha256_file(settings.weights)
    assert info.weights.source == "custom"
    assert info.test_accuracy is None


def test_model_with_book_weights(book_client: TestClient) -> None:
    info = book_client.get("/model").json()
    assert info["weights"]["source"] == "book"
    assert info["test_accuracy"] == 0.9352


def test_health(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "live"}
    assert client.get("/health/ready").json() == {"status": "ready"}


def test_ready_is_503_outside_the_lifespan(settings: Settings) -> None:
    client = TestClient(
        create_app(settings), raise_server_exceptions=False
    )  # no `with`: no lifespan
    assert_problem(client.get("/health/ready"), 503, "not ready")
    assert client.get("/health/live").status_code == 200
    assert_problem(client.post("/predict", json={"x": [0.0] * 784}), 503)


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("GET", "/nope", 404),
        ("GET", "/predict", 405),
        ("PUT", "/model", 405),
        ("POST", "/health/live", 405),
    ],
)
def test_router_errors_are_problems(
    client: TestClient, method: str, url: str, status: int
) -> None:
    assert_problem(client.request(method, url), status)


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    r = client.get("/nope", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.json()["request_id"] == "abc-123"
    generated = client.get("/health/live").headers["x-request-id"]
    assert len(generated) == 32
    assert (
        client.get("/health/live", headers={"x-request-id": "bad id\x7f"}).headers[
            "x-request-id"
        ]
        != "bad id\x7f"
    )


def test_bad_weights_refuse_to_start(tmp_path: Path) -> None:
    missing = create_app(Settings(weights=tmp_path / "missing.pkl"))
    with pytest.raises(WeightsError, match="does not exist"), TestClient(missing):
        pass
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80\x03cos\nsystem\n.")
    with (
        pytest.raises(WeightsError, match="refusing"),
        TestClient(create_app(Settings(weights=bad))),
    ):
        pass


def test_unexpected_errors_are_500_problems_without_traceback(
    client: TestClient, monkeypatch
) -> None:
    from core.network import Network

    def boom(self, x):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Network, "forward", boom)
    r = client.post(
        "/predict", json={"x": [0.0] * 784}, headers={"x-request-id": "req-1"}
    )
    problem = assert_problem(r, 500, "req-1")
    assert "secret" not in r.text
    assert "Traceback" not in r.text
    assert problem["request_id"] == "req-1"


def test_openapi_documents_every_form(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {
        "application/json",
        "multipart/form-data",
        "image/png",
        "application/octet-stream",
    } <= set(content)
    examples = content["application/json"]["examples"]
    for example in examples.values():
        r = client.post("/predict", json=example["value"])
        assert r.status_code == 200, r.text
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422"} <= set(responses)
    assert "/activations/{name}" in spec["paths"]
    assert "/model" in spec["paths"]
    assert "/health/ready" in spec["paths"]


def test_model_reports_the_shipped_weights_provenance() -> None:
    shipped = PROJECT_ROOT / "weights" / "mnist" / "1" / "weights.pkl"
    with TestClient(create_app(Settings(weights=shipped))) as c:
        info = ModelInfo.model_validate(c.get("/model").json())
    meta = json.loads(shipped.with_suffix(".json").read_text())
    assert info.weights.source == "project"
    assert info.weights.sha256 == sha256_file(shipped) == meta["sha256"]
    assert info.provenance is not None
    assert info.provenance["seed"] == meta["seed"]
    assert info.test_accuracy == meta["test_accuracy"] >= 0.975


def test_default_settings_serve_the_shipped_weights(
    monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # found through the package, not the working directory
    for key in ("MNIST_SERVE_WEIGHTS", "MNIST_SERVE_MODEL_REPOSITORY"):
        monkeypatch.delenv(key, raising=False)
    assert Settings().repository() == PROJECT_ROOT / "weights"
    with TestClient(create_app(Settings())) as c:
        info = ModelInfo.model_validate(c.get("/model").json())
    assert info.name == "mnist"
    shipped = PROJECT_ROOT / "weights" / "mnist" / "1" / "weights.pkl"
    assert info.weights.sha256 == sha256_file(shipped)


def test_a_relative_weights_path_is_relative_to_the_working_directory(
    monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings(weights=Path("w.pkl")).model_files() == {
        "mnist": tmp_path / "w.pkl"
    }
