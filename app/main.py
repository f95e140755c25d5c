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

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from app import errors
from app.admission import Budget, set_work_threads, tune_allocator
from app.codecs import fastjson
from app.middleware import GuardMiddleware, MetricsMiddleware
from app.routes import (
    activations,
    docs,
    explain,
    health,
    models,
    predict,
    repository,
    ui,
    v2,
)
from app.routes import metrics as metrics_route
from app.service import Service, build_service, load_models
from app.settings import Settings
from app.signals import ignore_sighup_in_worker
from core.errors import CoreError

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
    ignore_sighup_in_worker()
    tune_allocator()
    limiter = _limit_blas_threads(settings.blas_threads)
    try:
        await load_models(service)
    except CoreError as exc:
        # One line that says why; the process must not serve without a network.
        logger.error("cannot start: %s", exc.message)
        raise
    grpc_server = None
    if settings.grpc_port:
        from app.grpc_api.server import start  # only when gRPC is on

        grpc_server = await start(
            service,
            app.state.budget,
            host=settings.host,
            port=settings.grpc_port,
            version=VERSION,
        )
    tasks = []
    if settings.model_control == "poll":
        tasks.append(
            asyncio.create_task(service.repository.poll(settings.poll_seconds))
        )
    if settings.model_control == "explicit" and settings.control_file is not None:
        tasks.append(asyncio.create_task(service.repository.follow()))
    try:
        yield
    finally:
        if grpc_server is not None:
            # New calls are refused; those in flight get the graceful timeout.
            await grpc_server.stop(settings.graceful_timeout)
        for task in tasks:
            task.cancel()
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
        # No redirect to the path with(out) a trailing slash: Starlette builds
        # it from the Host header, so `GET /activations/` with `Host:
        # evil.example` would send the client to evil.example. 404 instead.
        redirect_slashes=False,
    )
    service = build_service(settings)
    app.state.service = service
    app.state.metrics = service.metrics
    errors.install(app)
    for module in (
        predict,
        explain,
        activations,
        models,
        health,
        v2,
        repository,
        ui,
        docs,
    ):
        app.include_router(module.router)
    app.state.budget = Budget(
        settings.memory_budget,
        settings.max_concurrency,
        settings.queue_timeout,
        reserved=fastjson.keep_parsers(settings.memory_budget),
    )
    set_work_threads(settings.work_threads)
    app.add_middleware(
        GuardMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout,
        budget=app.state.budget,
    )
    if service.metrics is not None:
        app.include_router(metrics_route.router)
        # Outermost: counts what the guard refuses too.
        app.add_middleware(
            MetricsMiddleware, metrics=service.metrics, routes=app.router.routes
        )
    return app


def __getattr__(name: str) -> Any:
    # `uvicorn app.main:app` looks the attribute up: build the app then, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
