"""Application factory. ``uvicorn app.main:app`` or ``mnist-serve`` starts it.

Nothing runs at import: ``app`` is built on first access (uvicorn's lookup),
and the weights are loaded by the lifespan, once per worker process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI

from app import errors, logconfig, metrics
from app.deps import ServiceState
from app.middleware import GuardMiddleware
from app.routes import activations, docs, health, model, predict, ui, v2
from app.settings import Settings
from core.errors import CoreError, WeightsError
from core.network import Network
from core.weights import load_weights

logger = logging.getLogger("mnist_serve")

VERSION = "0.1.0"
DESCRIPTION = """
Handwritten-digit inference with the 3-layer NumPy network of chapter 3 of
*Deep Learning from Scratch* (784-50-100-10, sigmoid, sigmoid, softmax), plus
the chapter's activation functions. Errors are RFC 9457 `application/problem+json`.
"""


def self_test(network: Network) -> None:
    """One inference that must succeed before the service reports ready.

    Raises
    ------
    WeightsError
        The network gives non-finite output, rows that do not sum to 1, or
        batch answers that differ from single ones.
    """
    rng = np.random.default_rng(0)
    x = rng.random((8, network.input_size), dtype=np.float32)
    batch = network.forward(x)
    single = network.forward(x[0])
    if not np.isfinite(batch).all():
        raise WeightsError("self-test: the network produced non-finite output")
    if network.output == "softmax" and not np.allclose(
        batch.sum(axis=1), 1.0, atol=1e-4
    ):
        raise WeightsError("self-test: probabilities do not sum to 1")
    if not np.allclose(single[0], batch[0], atol=1e-5):
        raise WeightsError("self-test: single and batch answers differ")


def _limit_blas_threads(threads: int) -> Any:
    if threads <= 0:
        return None
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServiceState = app.state.service
    settings = state.settings
    path = settings.resolved_weights()
    limiter = _limit_blas_threads(settings.blas_threads)
    try:
        state.weights = load_weights(path, settings.weights_max_bytes)
        self_test(state.weights.network)
    except CoreError as exc:
        # One line that says why; the process must not serve without a network.
        logger.error("cannot start: weights %s: %s", path, exc.message)
        raise
    observer = getattr(app.state, "metrics", None)
    if observer is not None:
        observer.watch(state)  # count batch sizes from here on
    state.ready = True
    logger.info(
        "serving %s (%s, sha256 %s…)",
        path,
        state.weights.format,
        state.weights.sha256[:12],
    )
    try:
        yield
    finally:
        state.ready = False
        state.weights = None
        if limiter is not None:
            limiter.restore_original_limits()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service. ``settings`` defaults to ``Settings()`` (environment)."""
    settings = settings or Settings()
    app = FastAPI(
        title="mnist-serve",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served offline, under a CSP, by app.routes.docs instead of from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = ServiceState(settings=settings)
    errors.install(app)
    app.include_router(predict.router)
    app.include_router(activations.router)
    app.include_router(model.router)
    app.include_router(health.router)
    app.include_router(v2.router)
    app.include_router(ui.router)
    app.include_router(docs.router)
    app.add_middleware(
        GuardMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout,
        max_concurrency=settings.max_concurrency,
    )
    # Outermost last: V2 error bodies, then metrics, then the log context.
    app.add_middleware(v2.V2ErrorMiddleware)
    if settings.metrics:
        metrics.install(app)
    logconfig.install(app)
    return app


def __getattr__(name: str) -> Any:
    # `uvicorn app.main:app` looks the attribute up: build the app then, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
