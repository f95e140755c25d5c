"""Dependencies: the loaded model and the settings, from ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.errors import ProblemError
from app.settings import Settings
from core.network import Network
from core.weights import LoadedWeights


@dataclass
class ServiceState:
    """What the lifespan sets up: the settings and, once loaded, the weights."""

    settings: Settings
    weights: LoadedWeights | None = None
    ready: bool = False

    @property
    def network(self) -> Network:
        if self.weights is None or not self.ready:
            raise ProblemError(
                503,
                "the model is not loaded yet",
                type_="not-ready",
                headers={"Retry-After": "1"},
            )
        return self.weights.network


# async on purpose: FastAPI runs a plain-def dependency in its thread pool, a
# hop that costs more than the whole single-image forward pass.
async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


async def get_network(request: Request) -> Network:
    state: ServiceState = request.app.state.service
    return state.network


async def get_settings(request: Request) -> Settings:
    state: ServiceState = request.app.state.service
    return state.settings


StateDep = Annotated[ServiceState, Depends(get_state)]
NetworkDep = Annotated[Network, Depends(get_network)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
