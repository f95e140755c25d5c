"""/docs (Swagger UI) and /redoc in a real headless Chromium, offline.

Every request to a host other than the server is recorded and aborted, as on
a machine without internet; the pages must render and work without any, and
without a single CSP violation or console error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from core.weights import save_network
from tests.conftest import random_network
from tests.e2e.browser import TIMEOUT_MS, Console, Offline, chromium
from tests.e2e.conftest import Server, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("docs-server")
    weights = tmp / "weights.pkl"
    save_network(random_network(np.random.default_rng(0)), weights)
    s = start_server(weights, tmp)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


class DocsPage:
    """A fresh offline browser context on one page of the server."""

    def __init__(self, browser: Any, server: Server, path: str) -> None:
        self.context = browser.new_context(viewport={"width": 1200, "height": 900})
        self.offline = Offline(self.context, server.url)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.console = Console(self.page)
        response = self.page.goto(server.url + path)
        assert response is not None
        assert response.status == 200
        self.csp = response.headers["content-security-policy"]

    def close(self, screenshot: Path) -> None:
        self.page.screenshot(path=str(screenshot))
        self.context.close()
        assert self.offline.foreign == []
        assert self.console.errors == []


@pytest.fixture
def swagger(browser: Any, server: Server, tmp_path: Path) -> Iterator[DocsPage]:
    page = DocsPage(browser, server, "/docs")
    yield page
    page.close(tmp_path / "docs.png")


@pytest.fixture
def redoc(browser: Any, server: Server, tmp_path: Path) -> Iterator[DocsPage]:
    page = DocsPage(browser, server, "/redoc")
    yield page
    page.close(tmp_path / "redoc.png")


def _operations(server: Server) -> list[tuple[str, str]]:
    spec = httpx.get(server.url + "/openapi.json", timeout=10).json()
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
    ]


def test_swagger_ui_lists_every_operation(swagger: DocsPage, server: Server) -> None:
    assert "unsafe-inline" not in swagger.csp
    expected = _operations(server)
    swagger.page.wait_for_selector(".opblock-summary-path")
    shown = swagger.page.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(b => [
             b.querySelector('.opblock-summary-method').textContent.trim(),
             b.querySelector('.opblock-summary-path').dataset.path])""",
    )
    assert sorted(map(tuple, shown)) == sorted(expected)


def test_swagger_try_it_out_predicts(swagger: DocsPage) -> None:
    page = swagger.page
    block = page.locator("#operations-predict-predict_predict_post")
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    # The request body editor holds the spec's first example, one image.
    assert '"x"' in block.locator("textarea.body-param__text").input_value()
    with page.expect_response(lambda r: r.url.split("?")[0].endswith("/predict")) as r:
        block.get_by_role("button", name="Execute").click()
    assert r.value.status == 200
    assert r.value.request.method == "POST"
    # Swagger UI shows the answer: status 200 and the predicted label.
    live = block.locator(".live-responses-table .response")
    live.locator(".response-col_status").get_by_text("200").wait_for()
    body = str(live.locator(".response-col_description pre").first.text_content())
    assert '"label"' in body
    assert '"probabilities"' in body


def test_redoc_renders_the_operations_and_searches(
    redoc: DocsPage, server: Server
) -> None:
    assert "unsafe-inline" not in redoc.csp
    page = redoc.page
    page.get_by_role("heading", name="mnist-serve", exact=False).first.wait_for()
    # One h2 per operation, as in the spec.
    page.wait_for_function(
        "n => document.querySelectorAll('[data-section-id^=\"operation/\"]').length === n",
        arg=len(_operations(server)),
    )
    # Search runs in ReDoc's Web Worker (worker-src blob:).
    page.get_by_placeholder("Search...").fill("activation")
    page.locator("[data-role='search:results'] li").first.wait_for()
    assert page.locator("[data-role='search:results'] li").count() >= 3
