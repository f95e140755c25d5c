"""The web page: GET / and /static/... (it draws from POST /explain and /predict).

The page is three static files shipped in ``app/static`` (no build step, no
CDN): it works offline and under a strict Content-Security-Policy, since it
has no inline script or style.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.errors import clip
from app.exceptions import NotFoundError

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
        raise NotFoundError(f"no static file {clip(name)!r}")
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
