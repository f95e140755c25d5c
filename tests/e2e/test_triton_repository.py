"""Several models behind one server, driven by the real tritonclient[http].

The shipped repository plus the book's own file (``--model book=PATH``), in
explicit model control with an admin token: Triton's configuration,
statistics and repository extensions as tritonclient calls them, and the
book's figure through ``/predict?model=book``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.conftest import BOOK_WEIGHTS, PROJECT_ROOT, require
from tests.e2e.conftest import Server, mnist_serve_command

triton = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.e2e

TOKEN = "triton-repository-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from bench.procs import free_port, launch, wait_ready

    book = require(BOOK_WEIGHTS)
    tmp = tmp_path_factory.mktemp("repository")
    repo = tmp / "repo"
    shutil.copytree(
        PROJECT_ROOT / "weights",
        repo,
        ignore=shutil.ignore_patterns("__pycache__", "*.py", "*.md"),
    )
    port = free_port()
    command = [
        *mnist_serve_command(),
        "--port",
        str(port),
        "--model-repository",
        str(repo),
        "--model",
        f"book={book}",
        "--model-control",
        "explicit",
    ]
    log = tmp / "server.log"
    process = launch(command, log, {"MNIST_SERVE_ADMIN_TOKEN": TOKEN})
    s = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_ready(process, s.url, log, timeout=60)
        yield s
    finally:
        s.stop()
    assert TOKEN not in log.read_text()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[object]:
    c = triton.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        yield c
    finally:
        c.close()


def _infer(client: object, model: str, x: np.ndarray) -> np.ndarray:
    tensor = triton.InferInput("input", list(x.shape), "UINT8")
    tensor.set_data_from_numpy(x)
    return client.infer(model, [tensor]).as_numpy("label")  # type: ignore[attr-defined]


def test_config_statistics_and_index(client: object, server: Server) -> None:
    models = httpx.get(f"{server.url}/models").json()
    names = [m["name"] for m in models]
    assert {"mnist", "book"} <= set(names)
    config = client.get_model_config("book")  # type: ignore[attr-defined]
    assert config["max_batch_size"] > 0
    assert config["input"][0]["dims"] == [784]
    x = np.zeros((3, 784), np.uint8)
    _infer(client, "book", x)
    stats = client.get_inference_statistics("book")["model_stats"]  # type: ignore[attr-defined]
    assert stats[0]["inference_count"] >= 3
    assert stats[0]["inference_stats"]["success"]["count"] >= 1
    index = client.get_model_repository_index(headers=AUTH)  # type: ignore[attr-defined]
    assert {(e["name"], e["state"]) for e in index} >= {
        ("mnist", "READY"),
        ("book", "READY"),
    }
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_repository_index()  # type: ignore[attr-defined]
    assert caught.value.status() == "401"


def test_unload_and_load_through_tritonclient(client: object) -> None:
    names = [e["name"] for e in client.get_model_repository_index(headers=AUTH)]  # type: ignore[attr-defined]
    other = next(n for n in names if n not in ("mnist", "book"))
    client.unload_model(other, headers=AUTH)  # type: ignore[attr-defined]
    assert not client.is_model_ready(other)  # type: ignore[attr-defined]
    with pytest.raises(InferenceServerException) as caught:
        client.load_model(other, headers={"Authorization": "Bearer nope"})  # type: ignore[attr-defined]
    assert caught.value.status() == "403"
    client.load_model(other, headers=AUTH)  # type: ignore[attr-defined]
    assert client.is_model_ready(other)  # type: ignore[attr-defined]


def test_the_books_model_gives_the_books_figure(
    server: Server, mnist_test: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = mnist_test
    pixels = images.reshape(len(images), 784)
    correct = 0
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for start in range(0, len(pixels), 2500):
            chunk = pixels[start : start + 2500]
            r = http.post(
                "/predict?model=book",
                content=chunk.tobytes(),
                headers={"content-type": "application/octet-stream"},
            )
            assert r.status_code == 200
            assert r.headers["x-model"] == "book"
            correct += int(
                (np.array(r.json()["labels"]) == labels[start : start + 2500]).sum()
            )
        assert correct == 9352
        book = http.get("/models/book").json()
        assert book["weights"]["source"] == "book"
        assert book["test_accuracy"] == 0.9352
