"""Prometheus metrics at ``GET /metrics``.

* ``mnist_serve_http_requests_total{method, route, status}`` and
  ``mnist_serve_http_request_duration_seconds{method, route, status}``: every
  HTTP request, refusals by the guard (413, 408, 503) included. ``route`` is
  the route's template (``/activations/{name}``), never the raw path, and
  unknown methods count as ``other``, so clients cannot grow the label set.
* ``mnist_serve_http_requests_in_flight``: requests being read, computed or
  answered right now (a scrape counts itself).
* ``mnist_serve_inference_batch_size``: rows per forward pass (histogram).
* ``mnist_serve_images_processed_total``: images through the network.
* ``mnist_serve_model_info{name, file, format, sha256, source} 1`` and
  ``mnist_serve_model_ready``: what is served, read at scrape time.

With several workers (``PROMETHEUS_MULTIPROC_DIR`` set; ``mnist-serve
--workers N`` sets it to a fresh directory) counters and histograms are written
to memory-mapped files and every worker's scrape adds up all of them, so any
worker answers for the whole process group.

The per-request cost is one plain-ASGI layer, a clock read and two cached
label children (a few microseconds); no ``BaseHTTPMiddleware``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from numpy.typing import ArrayLike, NDArray
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.deps import ServiceState
from app.routes.model import weights_source
from core.network import Network

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
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


def multiprocess_mode() -> bool:
    """True when prometheus_client writes values to ``PROMETHEUS_MULTIPROC_DIR``."""
    return bool(os.environ.get(MULTIPROC_ENV))


class ModelInfoCollector(Collector):
    """The served weights and readiness, read from the service state at scrape time."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(
            "mnist_serve_model_info",
            "The served model: weights file, format, sha256 and source (book, "
            "project or custom); the value is always 1.",
            labels=["name", "file", "format", "sha256", "source"],
        )
        loaded = self.state.weights
        if loaded is not None:
            source, _ = weights_source(loaded)
            info.add_metric(
                ["mnist", loaded.path.name, loaded.format, loaded.sha256, source], 1
            )
        yield info
        yield GaugeMetricFamily(
            "mnist_serve_model_ready",
            "1 once the weights are loaded and the self-test passed, else 0.",
            value=1 if self.state.ready else 0,
        )

    def describe(self) -> Iterable[Metric]:
        return []


class Metrics:
    """One app's metrics: the instruments and the registry that /metrics reads."""

    def __init__(self, state: ServiceState) -> None:
        multi = multiprocess_mode()
        # In multiprocess mode values live in files and are read back by a
        # MultiProcessCollector; registering the instruments too would count
        # them twice.
        own = CollectorRegistry(auto_describe=True)
        registry = None if multi else own
        self.requests = Counter(
            "mnist_serve_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "mnist_serve_http_request_duration_seconds",
            "Time from the request's arrival to the end of the answer, by method, "
            "route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "mnist_serve_http_requests_in_flight",
            "HTTP requests being read, computed or answered (a scrape counts itself).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.batch_size = Histogram(
            "mnist_serve_inference_batch_size",
            "Images per forward pass of the network.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.images = Counter(
            "mnist_serve_images_processed",
            "Images classified by the network.",
            registry=registry,
        )
        if multi:
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        else:
            self.registry = own
        self.registry.register(ModelInfoCollector(state))
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

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

    def observe_batch(self, rows: int) -> None:
        self.batch_size.observe(rows)
        self.images.inc(rows)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def watch(self, state: ServiceState) -> None:
        """Swap the loaded network for one that reports its batch sizes.

        The lifespan calls it once the weights are loaded and self-tested.
        """
        loaded = state.weights
        if loaded is None or isinstance(loaded.network, ObservedNetwork):
            return
        state.weights = dataclasses.replace(
            loaded, network=ObservedNetwork.wrap(loaded.network, self.observe_batch)
        )


class ObservedNetwork(Network):
    """The same network, reporting each forward pass's batch size.

    Built from the same weights, so it computes the same numbers. (A
    dependency override of ``get_network`` would do it too, but FastAPI
    rebuilds an overridden dependency on every request: ~0.3 ms.)
    """

    # No __slots__ here: instances get a __dict__ for the observer.
    _observe: Callable[[int], None]

    @classmethod
    def wrap(cls, network: Network, observe: Callable[[int], None]) -> ObservedNetwork:
        observed = cls(
            weights=network.weights,
            biases=network.biases,
            hidden_activation=network.hidden_activation,
            output=network.output,
        )
        object.__setattr__(observed, "_observe", observe)  # a frozen dataclass
        return observed

    def forward(self, x: ArrayLike) -> NDArray[np.float32]:
        out = super().forward(x)
        self._observe(int(out.shape[0]))
        return out


class MetricsMiddleware:
    """Count and time every HTTP request by method, route template and status."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        state: ServiceState,
        routes: Sequence[BaseRoute],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.state = state
        self.routes = routes
        self._flat: list[BaseRoute] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            method = scope["method"]
            self.metrics.observe_request(
                method if method in METHODS else "other",
                self._route(scope),
                status,
                time.perf_counter() - start,
            )

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        # Not routed: refused by the guard before the router ran, or no route
        # at all. Only these few requests pay for a lookup.
        if self._flat is None:
            self._flat = list(_flatten(self.routes))
        for candidate in self._flat:
            match, _ = candidate.matches(scope)
            if match is not Match.NONE:
                found = getattr(candidate, "path", None)
                if isinstance(found, str):
                    return found
        return UNMATCHED


def _flatten(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        # FastAPI >= 0.16x keeps an included router whole, behind a wrapper.
        # The routers here carry their own prefix, so the inner paths are full.
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _flatten(inner.routes)
        else:
            yield route


def scrape(request: Request) -> Response:
    """Prometheus metrics in the text exposition format."""
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> Metrics:
    """Add ``GET /metrics``, the request middleware and batch counting to ``app``."""
    metrics = Metrics(app.state.service)
    app.state.metrics = metrics
    # A plain def: in multiprocess mode the scrape reads files, off the event loop.
    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
    app.add_middleware(
        MetricsMiddleware,
        metrics=metrics,
        state=app.state.service,
        routes=app.router.routes,
    )
    return metrics
