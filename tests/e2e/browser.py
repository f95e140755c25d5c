"""Headless Debian Chromium through Playwright, for the browser tests.

No browser download: the system ``chromium`` is launched by path. When it or
the ``playwright`` package is missing the tests skip with a reason, and fail
instead under MNIST_SERVE_REQUIRE_BROWSER=1 (as in CI).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Server

REQUIRE_BROWSER = os.environ.get("MNIST_SERVE_REQUIRE_BROWSER") == "1"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


def unavailable(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} and MNIST_SERVE_REQUIRE_BROWSER=1")
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium (a Playwright ``Browser``)."""
    executable = shutil.which("chromium")
    if executable is None:
        unavailable("Chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright Python package is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield b
        finally:
            b.close()


class Offline:
    """Routes every request of a browser context: those to ``origin`` go
    through, those to any other host are recorded and aborted, as if the
    machine had no internet."""

    def __init__(self, context: Any, origin: str) -> None:
        self.netloc = urlsplit(origin).netloc
        self.foreign: list[str] = []
        context.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if urlsplit(url).netloc == self.netloc:
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()


class Console:
    """Collects a page's console errors, uncaught exceptions and CSP violations."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on(
            "console",
            lambda m: self.errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        # Reported in the console too, but this also names the directive.
        page.add_init_script(
            """document.addEventListener('securitypolicyviolation', e =>
                 console.error('CSP violation: ' + e.violatedDirective + ' '
                               + (e.blockedURI || e.sample)), true);"""
        )


class Page:
    """A page on the server's UI that records every console error."""

    def __init__(self, browser: Any, server: Server, **context: Any) -> None:
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.url = server.url
        self.console = Console(self.page)
        self.expected_statuses: set[int] = set()
        response = self.page.goto(server.url + "/")
        assert response is not None
        assert response.status == 200
        self.csp = response.headers["content-security-policy"]

    def stroke(self, points: list[tuple[float, float]]) -> None:
        """Draw one stroke with the mouse; points are fractions of the canvas."""
        box = self.page.locator("#canvas").bounding_box()
        assert box is not None
        xy = [
            (box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            for fx, fy in points
        ]
        mouse = self.page.mouse
        mouse.move(*xy[0])
        mouse.down()
        for x, y in xy[1:]:
            mouse.move(x, y, steps=8)
        mouse.up()

    def wait_for_label(self, old: str = "\u2013") -> str:
        self.page.wait_for_function(
            "old => /^[0-9]$/.test(document.getElementById('label').textContent)"
            " && document.getElementById('label').textContent !== old"
            " && document.querySelectorAll('#probabilities .bar').length === 10"
            " && / reads a [0-9] /.test(document.getElementById('status').textContent)",
            arg=old,
        )
        return str(self.page.text_content("#label"))

    def lit_pixels(self, canvas: str) -> int:
        """How many pixels of a canvas are not black or transparent."""
        return int(
            self.page.evaluate(
                """id => {
                  const c = document.getElementById(id);
                  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0;
                  for (let i = 0; i < d.length; i += 4)
                    if (d[i + 3] > 0 && d[i] + d[i + 1] + d[i + 2] > 60) n++;
                  return n;
                }""",
                canvas,
            )
        )

    def expect_failures(self, *statuses: int) -> None:
        """Requests answered with these statuses are part of the test: Chromium
        logs each as a console error, which close() then ignores."""
        self.expected_statuses.update(statuses)

    @property
    def errors(self) -> list[str]:
        expected = tuple(
            f"the server responded with a status of {s} "
            for s in self.expected_statuses
        )
        return [e for e in self.console.errors if not any(x in e for x in expected)]

    def error_status(self) -> str:
        """Waits until the page reports a failure, and returns what it says."""
        self.page.wait_for_selector("#status.error")
        return str(self.page.text_content("#status"))

    def pixels(self, canvas: str) -> list[list[int]]:
        """RGBA of every pixel of a canvas."""
        return list(
            self.page.evaluate(
                """id => {
                  const c = document.getElementById(id);
                  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  const out = [];
                  for (let i = 0; i < d.length; i += 4) out.push([d[i], d[i + 1], d[i + 2], d[i + 3]]);
                  return out;
                }""",
                canvas,
            )
        )

    def assert_answer_cleared(self) -> None:
        page = self.page
        assert page.text_content("#label") == "\u2013"
        assert page.locator("#probabilities .prob").count() == 0
        for canvas in ("seen", "saliency", "hidden1", "hidden2"):
            assert self.lit_pixels(canvas) == 0, canvas
        assert page.get_attribute("#logits", "aria-label") == "Logits"
        assert page.text_content("#saliency-title") == "Saliency"

    def close(self, screenshot: Path) -> None:
        self.page.screenshot(path=str(screenshot), full_page=True)
        self.context.close()
        assert screenshot.stat().st_size > 10_000
        assert self.errors == [], self.errors
