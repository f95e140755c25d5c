"""What routes depend on: the service's parts, built once by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.codecs import Limits
from app.inference import Inference
from app.models import Models
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class Service:
    """Everything a route may use; one instance per app, on ``app.state``."""

    settings: Settings
    limits: Limits
    models: Models
    inference: Inference


# async on purpose: FastAPI runs a plain-def dependency in its thread pool, a
# hop that costs more than the whole single-image forward pass.
async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]
