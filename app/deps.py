"""What routes depend on: the service's parts, built once by ``create_app``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.service import Service


# async on purpose: FastAPI runs a plain-def dependency in its thread pool, a
# hop that costs more than the whole single-image forward pass.
async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]
