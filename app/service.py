"""The service's parts, built once from the settings, and its startup.

``create_app`` builds one :class:`Service` per app; ``mnist-serve`` builds one
too, to load the models before any worker starts and fail with one line if
the default model cannot be served.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.codecs import Limits
from app.inference import Inference
from app.metrics import Metrics
from app.models import Models
from app.repository import Repository, choose_default
from app.settings import DEFAULT_MODEL, Settings
from core.errors import WeightsError
from core.images import ImageLimits


@dataclass(frozen=True, slots=True)
class Service:
    """Everything a route may use; one instance per app, on ``app.state``."""

    settings: Settings
    limits: Limits
    models: Models
    repository: Repository
    inference: Inference
    metrics: Metrics | None


def build_service(settings: Settings) -> Service:
    """The parts, wired together; nothing is loaded yet (see :func:`load_models`)."""
    models = Models(default=settings.default_model or DEFAULT_MODEL)
    metrics = Metrics(models) if settings.metrics else None
    repository = Repository(
        models,
        root=settings.repository(),
        files=settings.model_files(),
        control=settings.model_control,
        max_bytes=settings.weights_max_bytes,
        on_failure=metrics.observe_load_failure if metrics else None,
        control_file=settings.control_file,
    )
    return Service(
        settings=settings,
        limits=Limits(
            max_rows=settings.max_batch_size,
            max_parts=settings.max_upload_parts,
            max_part_bytes=settings.max_part_bytes,
            image=ImageLimits(
                max_pixels=settings.max_image_pixels,
                max_bytes=settings.max_body_bytes,
            ),
            max_request_pixels=settings.max_request_pixels,
        ),
        models=models,
        repository=repository,
        inference=Inference(models, inline_rows=settings.inline_rows, observer=metrics),
        metrics=metrics,
    )


async def load_models(service: Service) -> None:
    """Load every model of the repository and check the default one serves.

    Whatever the control mode, everything in the repository loads at startup.

    Raises
    ------
    WeightsError
        The default model has no version that loads and passes its self-test
        (the message says why), or there is no default to choose.
    """
    await service.repository.sync(pinned=service.repository.startup())
    models = service.models
    # Among every model the repository holds, loaded or not: a default that
    # failed to load must fail the start, not hand its place to another.
    names = {entry.name for entry in service.repository.index()}
    models.default = choose_default(service.settings.default_model, names)
    if models.ready:
        return
    reasons = [
        f"version {e.version}: {e.reason}" if e.version else e.reason
        for e in service.repository.index()
        if e.name == models.default and e.reason
    ]
    raise WeightsError(
        f"model {models.default!r}: "
        + ("; ".join(reasons) if reasons else "not found in the repository")
    )
