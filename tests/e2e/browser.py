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
from typing import Any
from urllib.parse import urlsplit

import pytest

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
