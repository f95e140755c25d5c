"""GET /metrics: request counts and latencies, batch sizes, model info."""

from __future__ import annotations

import http.client
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.metrics import MULTIPROC_ENV

if os.environ.get(MULTIPROC_ENV):  # pragma: no cover
    pytest.skip(
        f"{MULTIPROC_ENV} is set: in-process metrics would share files",
        allow_module_level=True,
    )


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, /, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def requests_total(samples, method: str, route: str, status: int) -> float:
    return value(
        samples,
        "mnist_serve_http_requests_total",
        method=method,
        route=route,
        status=str(status),
    )


def test_requests_are_labelled_by_route_template(client):
    for name in ("relu", "sigmoid", "tanh"):
        assert client.get(f"/activations/{name}?x=0").status_code == 200
    assert client.get("/activations/nope?x=0").status_code == 404
    assert client.get("/no/such/path").status_code == 404
    assert client.request("BREW", "/health/live").status_code == 405
    samples = scrape(client)
    assert requests_total(samples, "GET", "/activations/{name}", 200) == 3
    assert requests_total(samples, "GET", "/activations/{name}", 404) == 1
    assert requests_total(samples, "GET", "unmatched", 404) == 1
    # Unknown methods share one label value: clients cannot grow the label set.
    assert requests_total(samples, "other", "/health/live", 405) == 1
    routes = {
        dict(labels)["route"] for (_, labels) in samples if "route" in dict(labels)
    }
    assert not any("relu" in r or "such" in r for r in routes), routes
    # The latency histogram counts the same requests.
    assert (
        value(
            samples,
            "mnist_serve_http_request_duration_seconds_count",
            method="GET",
            route="/activations/{name}",
            status="200",
        )
        == 3
    )
    # /metrics sees itself only after answering: the scrape above is counted now.
    assert requests_total(scrape(client), "GET", "/metrics", 200) == 1


def test_latency_buckets_are_cumulative(client):
    for _ in range(4):
        client.get("/health/live")
    samples = scrape(client)
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in samples.items()
        if name == "mnist_serve_http_request_duration_seconds_bucket"
        and dict(labels)["route"] == "/health/live"
    )
    counts = [v for _, v in buckets]
    assert counts == sorted(counts)
    assert buckets[-1] == (float("inf"), 4)


def test_batches_and_images(client, rng):
    x = rng.random((5, 784), dtype=np.float32)
    assert client.post("/predict", json={"x": x.tolist()}).status_code == 200
    assert client.post("/predict", json={"x": x[0].tolist()}).status_code == 200
    pixels = rng.integers(0, 256, (3, 784), dtype=np.uint8)
    r = client.post(
        "/predict",
        content=pixels.tobytes(),
        headers={"content-type": "application/octet-stream"},
    )
    assert r.status_code == 200
    r = client.post(
        "/v2/models/mnist/infer",
        json={
            "inputs": [
                {
                    "name": "input",
                    "shape": [2, 784],
                    "datatype": "FP32",
                    "data": x[:2].tolist(),
                }
            ]
        },
    )
    assert r.status_code == 200
    # A refused request never reaches the network.
    assert client.post("/predict", json={"x": [2.0] * 784}).status_code == 422
    samples = scrape(client)
    mv = {"model": "mnist", "version": "1"}
    assert value(samples, "mnist_serve_images_processed_total", **mv) == 5 + 1 + 3 + 2
    assert value(samples, "mnist_serve_inference_batch_size_count", **mv) == 4
    assert value(samples, "mnist_serve_inference_batch_size_sum", **mv) == 11
    assert value(samples, "mnist_serve_inference_duration_seconds_count", **mv) == 4
    for le, count in (("1.0", 1), ("2.0", 2), ("4.0", 3), ("8.0", 4)):
        bucket = value(samples, "mnist_serve_inference_batch_size_bucket", le=le, **mv)
        assert bucket == count
    assert requests_total(samples, "POST", "/predict", 422) == 1
    assert requests_total(samples, "POST", "/v2/models/{model_name}/infer", 200) == 1


def test_guard_refusals_are_counted_under_their_route(settings, rng):
    small = settings.model_copy(update={"max_body_bytes": 1000})
    with TestClient(create_app(small), raise_server_exceptions=False) as client:
        x = rng.random(784).tolist()
        assert client.post("/predict", json={"x": x}).status_code == 413
        assert requests_total(scrape(client), "POST", "/predict", 413) == 1


def test_model_info_and_ready(client):
    model = client.get("/model").json()
    samples = scrape(client)
    labels = {
        "name": "mnist",
        "version": "1",
        "file": model["weights"]["file"],
        "format": model["weights"]["format"],
        "sha256": model["weights"]["sha256"],
        "source": model["weights"]["source"],
    }
    assert value(samples, "mnist_serve_model_info", **labels) == 1
    assert value(samples, "mnist_serve_model_ready") == 1


def test_book_weights_are_named_as_such(book_client):
    samples = scrape(book_client)
    (labels,) = [dict(k[1]) for k in samples if k[0] == "mnist_serve_model_info"]
    assert labels["source"] == "book"
    assert labels["sha256"] == book_client.get("/model").json()["weights"]["sha256"]


def test_not_ready_without_weights(settings):
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    samples = scrape(client)
    assert value(samples, "mnist_serve_model_ready") == 0
    assert not [k for k in samples if k[0] == "mnist_serve_model_info"]


def test_every_forward_pass_is_counted_once(client, rng):
    x = rng.random((7, 784), dtype=np.float32)
    assert client.post("/predict", json={"x": x.tolist()}).status_code == 200
    assert client.post("/explain", json={"x": x[0].tolist()}).status_code == 200
    pixels = rng.integers(0, 256, (3, 784), dtype=np.uint8).tobytes()
    octet = {"content-type": "application/octet-stream"}
    assert client.post("/predict", content=pixels, headers=octet).status_code == 200
    samples = scrape(client)
    mv = {"model": "mnist", "version": "1"}
    assert value(samples, "mnist_serve_inference_batch_size_count", **mv) == 3
    assert value(samples, "mnist_serve_images_processed_total", **mv) == 11


def test_apps_count_separately(settings):
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        a.get("/health/live")
        assert requests_total(scrape(a), "GET", "/health/live", 200) == 1
        assert requests_total(scrape(b), "GET", "/health/live", 200) == 0


def test_metrics_can_be_switched_off(settings, rng):
    off = settings.model_copy(update={"metrics": False})
    with TestClient(create_app(off), raise_server_exceptions=False) as client:
        assert client.get("/metrics").status_code == 404
        r = client.post("/predict", json={"x": rng.random(784).tolist()})
        assert r.status_code == 200
        assert client.app.state.metrics is None


def test_openapi_leaves_metrics_out(client):
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


@pytest.mark.e2e
def test_two_workers_add_up(weights_file: Path, tmp_path: Path):
    """With --workers 2 every scrape, whichever worker answers, counts all requests."""
    from tests.e2e.conftest import start_server

    env = {k: v for k, v in os.environ.items() if k != MULTIPROC_ENV}
    server = start_server(weights_file, tmp_path, "--workers", "2", env=env)
    try:
        directory = _metrics_dir(server.process.pid)
        sent = 0
        per_worker: dict[str, float] = {}
        # Fresh connections, in rounds, until both workers have answered some.
        deadline = time.monotonic() + 60
        while len(per_worker) < 2 and time.monotonic() < deadline:
            for _ in range(20):
                assert _get_on_new_connection(server.url, "/health/live") == 200
            sent += 20
            per_worker = _live_counts(directory, sent)
        assert len(per_worker) == 2, per_worker
        assert sum(per_worker.values()) == sent
        for _ in range(6):
            with httpx.Client(base_url=server.url, timeout=5) as http:
                samples = scrape(http)
            assert requests_total(samples, "GET", "/health/live", 200) == sent
            assert value(samples, "mnist_serve_model_ready") == 1
    finally:
        assert server.stop() == 0
    assert not directory.exists(), "the CLI removes the directory it made"


def _live_counts(directory: Path, expected: int) -> dict[str, float]:
    """/health/live counts per worker file. A worker counts a request just after
    answering it, so wait (briefly) for the last one to land."""
    from prometheus_client.multiprocess import MultiProcessCollector

    deadline = time.monotonic() + 5
    while True:
        counts: dict[str, float] = {}
        for db in directory.glob("counter_*.db"):
            for metric in MultiProcessCollector.merge([str(db)]):
                for s in metric.samples:
                    if (
                        s.name == "mnist_serve_http_requests_total"
                        and s.labels["route"] == "/health/live"
                    ):
                        counts[db.name] = s.value
        if sum(counts.values()) >= expected or time.monotonic() > deadline:
            return counts
        time.sleep(0.02)


def _metrics_dir(pid: int) -> Path:
    """The directory the CLI made for prometheus_client, from its workers' files."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in children:
            for fd in Path(f"/proc/{child}/fd").iterdir():
                try:
                    target = Path(os.readlink(fd))
                except OSError:
                    continue
                if target.parent.name.startswith("mnist-serve-metrics-"):
                    return target.parent
        time.sleep(0.1)
    raise AssertionError("no worker has a prometheus multiprocess file open")


def _get_on_new_connection(url: str, path: str) -> int:
    # http.client: a new connection costs well under a millisecond (an
    # httpx.Client builds an SSL context first).
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()
