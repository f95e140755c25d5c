"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import ServiceDep
from app.exceptions import NotReadyError
from app.schemas import Health, problem_doc

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Health)
async def live() -> Health:
    """200 while the process serves requests."""
    return Health(status="live")


@router.get(
    "/ready",
    response_model=Health,
    responses={503: problem_doc("Not ready yet (Retry-After: 1).")},
)
async def ready(service: ServiceDep) -> Health:
    """200 once the weights are loaded and a self-test inference passed, else 503."""
    if not service.models.ready:
        raise NotReadyError("the model is not ready")
    return Health(status="ready")
