"""The real tritonclient[http] against a real mnist-serve process: same numbers as /predict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mnist_client import Client
from tests.conftest import BOOK_WEIGHTS
from tests.e2e.conftest import Server, start_server

triton = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from tests.conftest import require

    tmp = tmp_path_factory.mktemp("triton")
    s = start_server(require(BOOK_WEIGHTS), tmp, "--no-access-log")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def triton_client(server: Server) -> Iterator[object]:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Client]:
    with Client(server.url) as c:
        yield c


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(1).random((7, 784), dtype=np.float32)


def infer_input(x: np.ndarray, binary: bool = True):
    datatype = "UINT8" if x.dtype == np.uint8 else "FP32"
    tensor = triton.InferInput("input", list(x.shape), datatype)
    tensor.set_data_from_numpy(x, binary_data=binary)
    return tensor


def test_health_and_metadata(triton_client):
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready("mnist")
    assert triton_client.is_model_ready("mnist", "1")
    assert not triton_client.is_model_ready("resnet50")
    server = triton_client.get_server_metadata()
    assert server["name"] == "mnist-serve"
    assert "binary_tensor_data" in server["extensions"]
    meta = triton_client.get_model_metadata("mnist")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 784]}]
    assert meta["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
        {"name": "label", "datatype": "INT64", "shape": [-1]},
    ]
    with pytest.raises(InferenceServerException, match="unknown model"):
        triton_client.get_model_metadata("resnet50")


def test_binary_infer_equals_predict(triton_client, client, images):
    # No outputs named: tritonclient asks for all of them as binary.
    result = triton_client.infer("mnist", [infer_input(images)])
    expected = client.predict_batch(images)
    assert result.get_output("probabilities")["parameters"]["binary_data_size"] == 280
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32
    np.testing.assert_array_equal(probabilities, expected.probabilities)
    np.testing.assert_array_equal(result.as_numpy("label"), expected.labels)


def test_json_infer_equals_predict(triton_client, client, images):
    outputs = [
        triton.InferRequestedOutput("probabilities", binary_data=False),
        triton.InferRequestedOutput("label", binary_data=False),
    ]
    result = triton_client.infer(
        "mnist", [infer_input(images, binary=False)], outputs=outputs, request_id="r1"
    )
    response = result.get_response()
    assert response["id"] == "r1"
    assert "data" in response["outputs"][0]
    expected = client.predict_batch(images)
    np.testing.assert_array_equal(
        result.as_numpy("probabilities"), expected.probabilities
    )
    np.testing.assert_array_equal(result.as_numpy("label"), expected.labels)
    # One image: /predict's single answer equals a one-row V2 batch (a one-row
    # forward pass can differ from a row of a larger one in the last bit).
    one = client.predict(images[3])
    single = triton_client.infer("mnist", [infer_input(images[3:4], binary=False)])
    np.testing.assert_array_equal(
        single.as_numpy("probabilities")[0], one.probabilities
    )
    assert single.as_numpy("label")[0] == one.label


def test_uint8_on_the_mnist_test_set(triton_client, client, mnist_test):
    pictures, labels = mnist_test
    pixels = pictures[:1000].reshape(-1, 784)
    result = triton_client.infer(
        "mnist",
        [infer_input(pixels)],
        outputs=[triton.InferRequestedOutput("label")],
    )
    assert result.as_numpy("probabilities") is None
    predicted = result.as_numpy("label")
    np.testing.assert_array_equal(predicted, client.predict_batch(pixels).labels)
    assert (predicted == labels[:1000]).mean() > 0.9


@pytest.mark.parametrize(
    ("x", "status", "message"),
    [
        (np.full((1, 784), 2.0, np.float32), "422", "outside [0, 1]"),
        (np.zeros((1, 783), np.float32), "422", "shape must be [n, 784]"),
        (np.zeros((1, 784), np.float64), "422", "'FP64' is not supported"),
        (np.zeros((4097, 784), np.uint8), "413", "over the limit of 4096"),
    ],
)
def test_errors_reach_the_client(triton_client, x, status, message):
    tensor = triton.InferInput(
        "input",
        list(x.shape),
        "FP64"
        if x.dtype == np.float64
        else ("UINT8" if x.dtype == np.uint8 else "FP32"),
    )
    tensor.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException) as info:
        triton_client.infer("mnist", [tensor])
    assert info.value.status() == status
    assert message in info.value.message()


def test_non_finite_json_is_refused(triton_client):
    x = np.zeros((1, 784), np.float32)
    x[0, 5] = np.nan
    with pytest.raises(InferenceServerException) as info:
        triton_client.infer("mnist", [infer_input(x, binary=True)])
    assert info.value.status() == "422"
    assert "non-finite number at input[0][5]" in info.value.message()


def test_unknown_model(triton_client, images):
    with pytest.raises(InferenceServerException) as info:
        triton_client.infer("resnet50", [infer_input(images)])
    assert info.value.status() == "404"


def test_requests_were_counted(server: Server, triton_client, images):
    import httpx

    triton_client.infer("mnist", [infer_input(images)])
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("mnist_serve_http_requests_total{")
        and 'route="/v2/models/{model_name}/infer"' in ln
        and 'status="200"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1


def test_weights_path_is_the_books(client):
    assert client.model()["weights"]["source"] == "book"
    assert Path(BOOK_WEIGHTS).name == client.model()["weights"]["file"]
