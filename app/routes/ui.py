"""The web page (GET /, /static/...) and POST /explain, which it draws from.

The page is three static files shipped in ``app/static`` (no build step, no
CDN): it works offline and under a strict Content-Security-Policy, since it
has no inline script or style.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.deps import NetworkDep, SettingsDep
from app.errors import ProblemError
from app.responses import ORJSONResponse
from app.routes.predict import (
    Preprocess,
    example_stroke,
    read_batch,
    request_body_doc,
)
from app.schemas import ExplainRequest, ExplainResponse, problem_doc
from core.explain import explain as explain_input
from core.network import IMAGE_SHAPE

router = APIRouter(tags=["ui"])

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@cache
def _static_files() -> dict[str, tuple[bytes, str, str]]:
    """Shipped file name -> (content, media type, ETag), read once."""
    files: dict[str, tuple[bytes, str, str]] = {}
    for entry in resources.files("app").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _MEDIA_TYPES:
            content = entry.read_bytes()
            etag = '"' + hashlib.sha256(content).hexdigest()[:16] + '"'
            files[entry.name] = (content, _MEDIA_TYPES[suffix], etag)
    return files


def _file_response(request: Request, name: str) -> Response:
    found = _static_files().get(name)
    if found is None:
        raise ProblemError(404, f"no static file {name!r}")
    content, media_type, etag = found
    headers = {**_SECURITY_HEADERS, "ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(content, media_type=media_type, headers=headers)


@router.get("/", include_in_schema=False)
async def index(request: Request) -> Response:
    """The page: draw a digit, look inside the network, explore activations."""
    return _file_response(request, "index.html")


@router.get("/static/{name}", include_in_schema=False)
async def static_file(request: Request, name: str) -> Response:
    """The page's script, style sheet and icon."""
    return _file_response(request, name)


@router.post(
    "/explain",
    response_model=ExplainResponse,
    response_class=ORJSONResponse,
    openapi_extra=request_body_doc(
        ExplainRequest,
        {
            "stroke": {
                "summary": "a vertical stroke, 28x28 in [0, 1]",
                "value": {"x": example_stroke()},
            }
        },
        many=False,
    ),
    responses={
        400: problem_doc("Malformed body or undecodable image."),
        413: problem_doc("Body or image pixels over a limit."),
        415: problem_doc("Unsupported Content-Type or image format."),
        422: problem_doc(
            "More than one image, wrong shape, out of range, no ink, "
            "or a target outside 0..9."
        ),
    },
)
async def explain(
    request: Request,
    network: NetworkDep,
    settings: SettingsDep,
    preprocess: Annotated[
        Preprocess,
        Query(description="Image uploads: as for /predict (auto, mnist or raw)."),
    ] = Preprocess.auto,
    target: Annotated[
        int | None,
        Query(
            ge=0,
            le=9,
            description="The class whose probability to differentiate; "
            "default: the predicted one.",
        ),
    ] = None,
) -> ORJSONResponse:
    """Hidden activations, logits, probabilities and a saliency map for one image.

    Takes the single-image bodies of /predict (JSON, one image file, one
    multipart part, or 784 octet-stream bytes). `saliency` is the gradient of
    the target class's probability with respect to each of the 784 input
    pixels, computed by backpropagation in float64.
    """
    batch = await read_batch(request, settings, preprocess)
    if batch.rows != 1:
        raise ProblemError(
            422,
            f"/explain takes one image, got {batch.rows}; use /predict for a batch",
            errors=[{"loc": ["body"], "msg": "exactly one image"}],
        )
    result = explain_input(network, batch.x[0], target)
    return ORJSONResponse(
        {
            "label": int(result.labels[0]),
            "target": int(result.targets[0]),
            "probabilities": result.probabilities[0],
            "logits": result.logits[0],
            "hidden": [h[0] for h in result.hidden],
            "saliency": result.saliency[0].reshape(IMAGE_SHAPE),
            "input": batch.x[0].reshape(IMAGE_SHAPE),
        }
    )
