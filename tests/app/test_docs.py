"""GET /docs and /redoc: assets from the fastapi-offline package, served here,
under a Content-Security-Policy. Browser checks are in tests/e2e/test_docs.py."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import assert_problem


def _directives(csp: str) -> dict[str, set[str]]:
    return {
        name: set(values)
        for name, *values in (d.split() for d in csp.split(";") if d.strip())
    }


def _loaded_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', html)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_another_host(
    client: TestClient, path: str
) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["x-content-type-options"] == "nosniff"
    html = r.text
    urls = _loaded_urls(html)
    assert urls, html
    for url in urls:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
        assert client.get(url).status_code == 200, url
    assert "http://" not in html
    assert "https://" not in html
    # No inline script, style element, style attribute or event handler.
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert "<style" not in html
    assert re.search(r"\sstyle=|\son[a-z]+=", html) is None


def test_swagger_ui_csp_allows_only_this_service(client: TestClient) -> None:
    csp = _directives(client.get("/docs").headers["content-security-policy"])
    assert csp["default-src"] == {"'none'"}
    assert csp["script-src"] == {"'self'"}
    assert csp["style-src"] == {"'self'"}
    assert csp["connect-src"] == {"'self'"}
    assert csp["img-src"] == {"'self'", "data:"}
    assert csp["frame-ancestors"] == {"'none'"}
    assert "worker-src" not in csp


def test_redoc_styles_need_a_fresh_nonce_not_unsafe_inline(
    client: TestClient,
) -> None:
    first, second = client.get("/redoc"), client.get("/redoc")
    nonces = []
    for r in (first, second):
        csp = _directives(r.headers["content-security-policy"])
        assert csp["script-src"] == {"'self'"}
        assert "'unsafe-inline'" not in csp["style-src"]
        (nonce,) = (v for v in csp["style-src"] if v.startswith("'nonce-"))
        # The init script carries it, to hand it to ReDoc.
        assert re.search(rf'<script src="[^"]+" nonce="{nonce[7:-1]}"', r.text)
        assert csp["worker-src"] == {"blob:"}
        assert r.headers["cache-control"] == "no-store"
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("redoc.standalone.js", "text/javascript"),
    ],
)
def test_docs_assets_come_from_the_package(
    client: TestClient, name: str, media_type: str
) -> None:
    r = client.get(f"/docs/assets/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(media_type)
    assert r.headers["x-content-type-options"] == "nosniff"
    shipped = resources.files("fastapi_offline").joinpath("static", name).read_bytes()
    if name == "redoc.standalone.js":
        # The one change: ReDoc's logo URL on its vendor's CDN is emptied.
        assert b"cdn.redoc.ly" in shipped
        assert b"cdn.redoc.ly" not in r.content
        assert len(shipped) - len(r.content) == len(
            "https://cdn.redoc.ly/redoc/logo-mini.svg"
        )
    else:
        assert r.content == shipped
    again = client.get(
        f"/docs/assets/{name}", headers={"if-none-match": r.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/docs/assets/nope.js",
        "/docs/assets/..%2fcore.py",
        "/docs/assets/favicon.png",
        "/docs/oauth2-redirect",
    ],
)
def test_unknown_docs_paths_are_404_problems(client: TestClient, path: str) -> None:
    assert_problem(client.get(path), 404)


def test_docs_are_not_in_the_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]
