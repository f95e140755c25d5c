"""The floor: a bare FastAPI + Pydantic app that parses what /predict gets and
answers a constant.

It does no inference, so no real service built the usual FastAPI way can beat
it; the HTTP benchmark reports /predict against it. One route per body kind,
each written the way the FastAPI documentation shows:

- ``POST /json``: a Pydantic model (``x``: one image or a list of images, 784
  floats each, plus ``normalize``), answered with a constant dict.
- ``POST /octet`` and ``POST /image``: the raw body, read whole.
- ``POST /multipart``: ``files: list[UploadFile] = File(...)``, each part read.

    uvicorn bench.floor_app:create_app --factory --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, File, Request, UploadFile
from pydantic import BaseModel

_PROBS = [0.1] * 10
SINGLE = {"label": 0, "probabilities": _PROBS}


def batch_answer(n: int) -> dict[str, list[int] | list[list[float]]]:
    return {"labels": [0] * n, "probabilities": [_PROBS] * n}


class Body(BaseModel):
    x: list[float] | list[list[float]]
    normalize: bool = False


def create_app() -> FastAPI:
    app = FastAPI(title="floor")

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/json")
    def predict_json(body: Body) -> dict[str, object]:
        x = body.x
        if x and isinstance(x[0], list):
            return batch_answer(len(x))
        return SINGLE

    @app.post("/octet")
    async def predict_octet(request: Request) -> dict[str, object]:
        data = await request.body()
        return batch_answer(len(data) // 784)

    @app.post("/image")
    async def predict_image(request: Request) -> dict[str, object]:
        await request.body()
        return SINGLE

    @app.post("/multipart")
    async def predict_multipart(
        file: Annotated[list[UploadFile], File()],
    ) -> dict[str, object]:
        for part in file:
            await part.read()
        return batch_answer(len(file))

    return app
