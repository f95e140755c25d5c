"""Application factory. ``uvicorn app.main:app`` or ``mnist-serve`` starts it.

Nothing runs at import: ``app`` is built on first access (uvicorn's lookup),
and the model is loaded by the lifespan, once per worker process.

A request crosses, outermost first: the metrics middleware (count, time), the
guard (request id, limits, body, 500s), the router, a route; the route hands
the body to its codec (``app.codecs``), the resulting ``core.batch.Batch`` to
the inference path (``app.inference``), and shapes the answer. Errors from
any of them leave through the error edge (``app.errors``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from app import errors
from app.codecs import Limits
from app.deps import Service
from app.inference import Inference
from app.metrics import Metrics
from app.middleware import GuardMiddleware, MetricsMiddleware
from app.models import Models, load_model
from app.routes import activations, docs, explain, health, model, predict, ui, v2
from app.routes import metrics as metrics_route
from app.settings import Settings
from core.errors import CoreError
from core.images import ImageLimits

logger = logging.getLogger("mnist_serve")

VERSION = "0.1.0"
DESCRIPTION = """
Handwritten-digit inference with the 3-layer NumPy network of chapter 3 of
*Deep Learning from Scratch* (784-50-100-10, sigmoid, sigmoid, softmax), plus
the chapter's activation functions. Errors are RFC 9457 `application/problem+json`.
"""


def _limit_blas_threads(threads: int) -> Any:
    if threads <= 0:
        return None
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: Service = app.state.service
    settings = service.settings
    path = settings.resolved_weights()
    limiter = _limit_blas_threads(settings.blas_threads)
    try:
        loaded = load_model(path, max_bytes=settings.weights_max_bytes)
    except CoreError as exc:
        # One line that says why; the process must not serve without a network.
        logger.error("cannot start: weights %s: %s", path, exc.message)
        raise
    service.models.serve(loaded)
    logger.info(
        "serving %s (%s, sha256 %s…)",
        path,
        loaded.weights.format,
        loaded.weights.sha256[:12],
    )
    try:
        yield
    finally:
        service.models.clear()
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
    models = Models()
    metrics = Metrics(models) if settings.metrics else None
    app.state.metrics = metrics
    app.state.service = Service(
        settings=settings,
        limits=Limits(
            max_rows=settings.max_batch_size,
            max_parts=settings.max_upload_parts,
            max_part_bytes=settings.max_part_bytes,
            image=ImageLimits(
                max_pixels=settings.max_image_pixels,
                max_bytes=settings.max_body_bytes,
            ),
        ),
        models=models,
        inference=Inference(
            models,
            inline_rows=settings.inline_rows,
            observe_batch=metrics.observe_batch if metrics else None,
        ),
    )
    errors.install(app)
    for router in (predict, explain, activations, model, health, v2, ui, docs):
        app.include_router(router.router)
    app.add_middleware(
        GuardMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout,
        max_concurrency=settings.max_concurrency,
    )
    if metrics is not None:
        app.include_router(metrics_route.router)
        # Outermost: counts what the guard refuses too.
        app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.router.routes)
    return app


def __getattr__(name: str) -> Any:
    # `uvicorn app.main:app` looks the attribute up: build the app then, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
