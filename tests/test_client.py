"""mnist_client: the typed sync client in process, the async one against a real server."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from core.network import Network
from mnist_client import (
    AsyncClient,
    BatchPrediction,
    Client,
    MnistServeError,
    Prediction,
)


@pytest.fixture
def client(weights_file: Path) -> Iterator[Client]:
    settings = Settings(weights=weights_file, max_batch_size=64)
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        with Client(http=http) as c:
            yield c


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def digit() -> np.ndarray:
    image = np.zeros((28, 28), dtype=np.uint8)
    image[4:24, 13:15] = 255
    return image


def test_predict_floats(client: Client, tiny_network: Network, rng):
    x = rng.random(784, dtype=np.float32)
    one = client.predict(x)
    assert isinstance(one, Prediction)
    expected = tiny_network.forward(x[None])[0]
    np.testing.assert_allclose(one.probabilities, expected, rtol=1e-6)
    assert one.label == int(expected.argmax())
    assert client.predict(x.reshape(28, 28)).label == one.label
    # float64 input is sent as float32: the same answer.
    np.testing.assert_array_equal(
        client.predict(x.astype(np.float64)).probabilities, one.probabilities
    )
    pixels = (x * 255).round()
    assert client.predict(pixels, normalize=True).probabilities.shape == (10,)


def test_predict_batch_floats_and_uint8(client: Client, tiny_network: Network, rng):
    x = rng.random((6, 784), dtype=np.float32)
    batch = client.predict_batch(x)
    assert isinstance(batch, BatchPrediction)
    assert len(batch) == 6
    assert batch.labels.dtype == np.int64
    assert batch.probabilities.shape == (6, 10)
    np.testing.assert_allclose(batch.probabilities, tiny_network.forward(x), rtol=1e-6)
    assert batch[2].label == batch.labels[2]
    pixels = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    as_bytes = client.predict_batch(pixels)
    as_json = client.predict_batch(pixels.astype(np.int64), normalize=True)
    np.testing.assert_array_equal(as_bytes.probabilities, as_json.probabilities)
    # A single uint8 image goes as raw bytes and still answers one Prediction.
    assert client.predict(pixels[0]).label == as_bytes.labels[0]


def test_predict_image_and_files(client: Client, digit: np.ndarray, tmp_path: Path):
    data = png(digit)
    path = tmp_path / "one.png"
    path.write_bytes(data)
    from_bytes = client.predict_image(data)
    from_path = client.predict_image(path, preprocess="raw")
    np.testing.assert_array_equal(from_bytes.probabilities, from_path.probabilities)
    expected = client.predict(digit.astype(np.float32) / 255)
    np.testing.assert_allclose(
        from_path.probabilities, expected.probabilities, rtol=1e-6
    )
    files = client.predict_files([data, path, png(255 - digit)])
    assert len(files) == 3
    np.testing.assert_array_equal(files.probabilities[0], files.probabilities[1])
    one = client.predict_files([data])
    assert len(one) == 1
    assert one.labels[0] == from_bytes.label


def test_activations_model_and_health(client: Client):
    names = {a["name"] for a in client.activations()}
    assert {"sigmoid", "relu", "softmax"} <= names
    values = client.activation("leaky_relu", [-2.0, 0.0, 3.0], alpha=0.1)
    np.testing.assert_allclose(values.y, [-0.2, 0.0, 3.0])
    np.testing.assert_allclose(values.dy, [0.1, 1.0, 1.0])
    assert values.params == {"alpha": 0.1}
    model = client.model()
    assert model["layers"] == [784, 50, 100, 10]
    assert len(model["weights"]["sha256"]) == 64
    assert client.live()
    assert client.ready()


def test_errors_are_raised_with_the_problem(client: Client, rng):
    with pytest.raises(MnistServeError) as info:
        client.predict(np.full(784, 2.0, dtype=np.float32))
    assert info.value.status == 422
    assert "outside [0, 1]" in info.value.detail
    assert info.value.problem["type"] == "/problems/invalid-input"
    assert info.value.request_id
    with pytest.raises(MnistServeError) as info:
        client.predict_batch(rng.random((65, 784), dtype=np.float32))
    assert info.value.status == 413
    with pytest.raises(MnistServeError) as info:
        client.activation("nope", [0.0])
    assert info.value.status == 404


def test_bad_arguments_fail_before_sending(client: Client):
    with pytest.raises(ValueError, match="expected"):
        client.predict(np.zeros((2, 784), dtype=np.float32))
    with pytest.raises(ValueError, match="batch"):
        client.predict_batch(np.zeros(784, dtype=np.float32))
    with pytest.raises(TypeError, match="numbers"):
        client.predict(np.array(["a"] * 784))
    with pytest.raises(ValueError, match="at least one"):
        client.predict_files([])


@pytest.mark.e2e
def test_async_client_against_a_real_server(
    weights_file: Path, tmp_path: Path, digit: np.ndarray, rng
):
    from tests.e2e.conftest import start_server

    server = start_server(weights_file, tmp_path)
    x = rng.random((3, 784), dtype=np.float32)

    async def main() -> None:
        async with AsyncClient(server.url) as client:
            assert await client.live()
            assert await client.ready()
            batch, one, image, files, model, acts = await asyncio.gather(
                client.predict_batch(x),
                client.predict(x[0]),
                client.predict_image(png(digit)),
                client.predict_files([png(digit), png(digit)]),
                client.model(),
                client.activations(),
            )
            with Client(server.url) as sync:
                np.testing.assert_array_equal(
                    batch.probabilities, sync.predict_batch(x).probabilities
                )
                again = sync.predict(x[0])
                np.testing.assert_array_equal(one.probabilities, again.probabilities)
                assert one.label == again.label
            assert image.label == files.labels[0] == files.labels[1]
            assert model["weights"]["source"] == "custom"
            assert any(a["name"] == "sigmoid" for a in acts)
            values = await client.activation("relu", [-1.0, 1.0])
            np.testing.assert_array_equal(values.y, [0.0, 1.0])
            with pytest.raises(MnistServeError) as info:
                await client.predict(np.full(784, -1.0, dtype=np.float32))
            assert info.value.status == 422

    try:
        asyncio.run(main())
    finally:
        server.stop()
