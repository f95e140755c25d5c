"""Prometheus metrics: the instruments, and the registry ``GET /metrics`` reads.

* ``mnist_serve_http_requests_total{method, route, status}`` and
  ``mnist_serve_http_request_duration_seconds{method, route, status}``: every
  HTTP request, refusals by the guard (413, 408, 503) included. ``route`` is
  the route's template (``/activations/{name}``), never the raw path, and
  unknown methods count as ``other``, so clients cannot grow the label set.
* ``mnist_serve_http_requests_in_flight``: requests being read, computed or
  answered right now (a scrape counts itself).
* ``mnist_serve_inference_batch_size{model, version}``: rows per forward pass,
  ``mnist_serve_images_processed_total{model, version}``: images classified,
  ``mnist_serve_inference_duration_seconds{model, version}``: compute time.
* ``mnist_serve_grpc_requests_total{method, code}`` and
  ``mnist_serve_grpc_request_duration_seconds{method, code}``: every gRPC call.
* ``mnist_serve_model_load_failures_total{model}``: files that failed to load.
* ``mnist_serve_model_info{name, version, file, format, sha256, source} 1``
  and ``mnist_serve_model_ready``: what is served, read at scrape time.

With several workers (``PROMETHEUS_MULTIPROC_DIR`` set; ``mnist-serve
--workers N`` sets it to a fresh directory) counters and histograms are written
to memory-mapped files and every worker's scrape adds up all of them, so any
worker answers for the whole process group.

The per-request cost is one plain-ASGI layer, a clock read and two cached
label children (a few microseconds); no ``BaseHTTPMiddleware``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from app.models import Models

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS = tuple(float(2**i) for i in range(13))  # 1 .. 4096


def multiprocess_mode() -> bool:
    """True when prometheus_client writes values to ``PROMETHEUS_MULTIPROC_DIR``."""
    return bool(os.environ.get(MULTIPROC_ENV))


class ModelInfoCollector(Collector):
    """The served weights and readiness, read from the models at scrape time."""

    def __init__(self, models: Models) -> None:
        self.models = models

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(
            "mnist_serve_model_info",
            "The served model: weights file, format, sha256 and source (book, "
            "project or custom); the value is always 1.",
            labels=["name", "version", "file", "format", "sha256", "source"],
        )
        for model in self.models:
            weights = model.weights
            info.add_metric(
                [model.name, str(model.version), weights.path.name, weights.format,
                 weights.sha256, model.source],
                1,
            )  # fmt: skip
        yield info
        yield GaugeMetricFamily(
            "mnist_serve_model_ready",
            "1 once the weights are loaded and the self-test passed, else 0.",
            value=1 if self.models.ready else 0,
        )

    def describe(self) -> Iterable[Metric]:
        return []


class Metrics:
    """One app's metrics: the instruments and the registry that /metrics reads."""

    def __init__(self, models: Models) -> None:
        multi = multiprocess_mode()
        # In multiprocess mode values live in files and are read back by a
        # MultiProcessCollector; registering the instruments too would count
        # them twice.
        own = CollectorRegistry(auto_describe=True)
        registry = None if multi else own

        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def histogram(
            name: str, doc: str, labels: list[str], buckets: tuple[float, ...]
        ) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=registry)

        http = ["method", "route", "status"]
        model = ["model", "version"]
        grpc = ["method", "code"]
        self.requests = counter(
            "mnist_serve_http_requests",
            "HTTP requests by method, route template and status.",
            http,
        )
        self.latency = histogram(
            "mnist_serve_http_request_duration_seconds",
            "Time from the request's arrival to the end of the answer, by method, "
            "route template and status.",
            http,
            LATENCY_BUCKETS,
        )
        self.in_flight = Gauge(
            "mnist_serve_http_requests_in_flight",
            "HTTP requests being read, computed or answered (a scrape counts itself).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.batch_size = histogram(
            "mnist_serve_inference_batch_size",
            "Images per forward pass of the network, by model and version.",
            model,
            BATCH_BUCKETS,
        )
        self.images = counter(
            "mnist_serve_images_processed",
            "Images classified, by model and version.",
            model,
        )
        self.inference_latency = histogram(
            "mnist_serve_inference_duration_seconds",
            "Time of one forward pass (or explanation), by model and version.",
            model,
            LATENCY_BUCKETS,
        )
        self.grpc_requests = counter(
            "mnist_serve_grpc_requests", "gRPC calls by method and status code.", grpc
        )
        self.grpc_latency = histogram(
            "mnist_serve_grpc_request_duration_seconds",
            "Time of a gRPC call, by method and status code.",
            grpc,
            LATENCY_BUCKETS,
        )
        self.load_failures = counter(
            "mnist_serve_model_load_failures",
            "Weights files that failed to load or self-test, by model.",
            ["model"],
        )
        if multi:
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        else:
            self.registry = own
        self.registry.register(ModelInfoCollector(models))
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._inference: dict[tuple[str, int], tuple[Any, Any, Any]] = {}

    def observe_request(
        self, method: str, route: str, status: int, seconds: float
    ) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_inference(
        self, model: str, version: int, rows: int, seconds: float
    ) -> None:
        key = (model, version)
        children = self._inference.get(key)
        if children is None:
            labels = (model, str(version))
            children = (
                self.batch_size.labels(*labels),
                self.images.labels(*labels),
                self.inference_latency.labels(*labels),
            )
            self._inference[key] = children
        children[0].observe(rows)
        children[1].inc(rows)
        children[2].observe(seconds)

    def observe_grpc(self, method: str, code: str, seconds: float) -> None:
        self.grpc_requests.labels(method, code).inc()
        self.grpc_latency.labels(method, code).observe(seconds)

    def observe_load_failure(self, model: str) -> None:
        self.load_failures.labels(model).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
