"""GET /docs (Swagger UI) and GET /redoc, served offline under a CSP.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank
without internet, and they start Swagger UI with an inline script. Here the
JavaScript and CSS come from the ``fastapi-offline`` package (which vendors
swagger-ui-dist 5 and ReDoc 2, refreshed upstream) and are served by this
service under ``/docs/assets/``; the pages are started by small scripts of our
own in ``app/static`` (``docs-swagger.js``, ``docs-redoc.js``), so no inline
script is needed. Each page sends a Content-Security-Policy that allows only
what that UI does:

- Swagger UI: ``script-src 'self'``; ``style-src 'self'``; ``img-src 'self'
  data:`` (its style sheet draws icons as ``data:`` SVGs); ``connect-src
  'self'`` (it fetches ``/openapi.json`` and "Try it out" calls this service).
- ReDoc: the same, plus in ``style-src`` a per-response nonce, because ReDoc
  styles itself with styled-components, which writes ``<style>`` elements at
  run time (ReDoc's ``nonce`` option puts the nonce on them), and two hashes
  (see ``_REDOC_STYLE_HASHES``); no ``'unsafe-inline'``. And ``worker-src
  blob:``, because its search index runs in a Web Worker built from a
  ``blob:`` URL of its own code.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import cache
from html import escape
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.errors import clip
from app.exceptions import NotFoundError

router = APIRouter(include_in_schema=False)

ASSET_PACKAGE = "fastapi_offline"
ASSET_PREFIX = "/docs/assets"
_MEDIA_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
}
# ReDoc 2 draws its vendor's logo, from the vendor's CDN, in the sidebar's
# "API docs by Redocly" link: offline that is a request that cannot succeed and
# a CSP violation. With an empty ``src`` the image fails at once and ReDoc's own
# error handler removes it; the link text stays.
_REDOC_REMOTE_LOGO = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'

# One style sheet is inserted by ReDoc's bundle as it loads, before ReDoc can
# be given the nonce: perfect-scrollbar's CSS (with its source map comment),
# first as an empty <style>, then filled in. Their hashes, for the bundle of
# fastapi-offline 1.7.7 (ReDoc 2.5); a newer bundle with other CSS only loses
# the custom sidebar scrollbar, and the browser test reports the new hash.
_REDOC_STYLE_HASHES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # the empty string
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",  # perfect-scrollbar
)

_COMMON = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; font-src 'self'; manifest-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SWAGGER_CSP = f"{_COMMON}; style-src 'self'"


def redoc_csp(nonce: str) -> str:
    """The CSP of one /redoc response, whose inserted styles carry ``nonce``."""
    hashes = " ".join(_REDOC_STYLE_HASHES)
    return f"{_COMMON}; style-src 'self' 'nonce-{nonce}' {hashes}; worker-src blob:"


def _headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


@cache
def docs_assets() -> dict[str, tuple[bytes, str, str]]:
    """Asset name -> (content, media type, ETag), read once from the package."""
    folder = resources.files(ASSET_PACKAGE).joinpath("static")
    assets: dict[str, tuple[bytes, str, str]] = {}
    for name, media_type in _MEDIA_TYPES.items():
        content = folder.joinpath(name).read_bytes()
        if name == "redoc.standalone.js":
            content = content.replace(_REDOC_REMOTE_LOGO, b'""')
        etag = '"' + hashlib.sha256(content).hexdigest()[:16] + '"'
        assets[name] = (content, media_type, etag)
    return assets


@router.get(ASSET_PREFIX + "/{name}")
async def docs_asset(request: Request, name: str) -> Response:
    """Swagger UI's and ReDoc's script and style sheet."""
    found = docs_assets().get(name)
    if found is None:
        raise NotFoundError(f"no documentation asset {clip(name)!r}")
    content, media_type, etag = found
    # Revalidated on each use (a 304 is cheap), so an upgraded package is
    # picked up at once.
    headers = {**_headers(SWAGGER_CSP), "ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(content, media_type=media_type, headers=headers)


def _page(request: Request, title: str, head: str, body: str, csp: str) -> Response:
    root = escape(request.scope.get("root_path", ""))
    html = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{escape(request.app.title)} - {title}</title>
  <link rel="icon" href="{root}/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="{root}/static/docs.css">
{head}
</head>
<body>
{body}
</body>
</html>
"""
    headers = {**_headers(csp), "Cache-Control": "no-store"}
    return Response(html, media_type="text/html; charset=utf-8", headers=headers)


def _spec_url(request: Request) -> str:
    return escape(request.scope.get("root_path", "") + str(request.app.openapi_url))


@router.get("/docs")
async def swagger_ui(request: Request) -> Response:
    """Swagger UI, from assets served by this service."""
    root = escape(request.scope.get("root_path", ""))
    head = (
        f'  <link rel="stylesheet" href="{root}{ASSET_PREFIX}/swagger-ui.css">\n'
        f'  <script src="{root}{ASSET_PREFIX}/swagger-ui-bundle.js" defer></script>\n'
        f'  <script src="{root}/static/docs-swagger.js" defer></script>'
    )
    body = f'<div id="swagger-ui" data-spec-url="{_spec_url(request)}"></div>'
    return _page(request, "Swagger UI", head, body, SWAGGER_CSP)


@router.get("/redoc")
async def redoc(request: Request) -> Response:
    """ReDoc, from assets served by this service."""
    root = escape(request.scope.get("root_path", ""))
    nonce = secrets.token_urlsafe(18)
    head = (
        f'  <script src="{root}{ASSET_PREFIX}/redoc.standalone.js" defer></script>\n'
        # The init script hands the nonce to ReDoc: scripts can read a
        # nonce attribute, style sheets cannot.
        f'  <script src="{root}/static/docs-redoc.js" nonce="{nonce}" defer></script>'
    )
    body = f'<div id="redoc" data-spec-url="{_spec_url(request)}"></div>'
    return _page(request, "ReDoc", head, body, redoc_csp(nonce))
