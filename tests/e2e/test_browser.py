"""The web page in a real headless Chromium against a real server.

Needs Debian's ``chromium`` and the Python ``playwright`` package (see
tests/e2e/browser.py: skipped with a reason when either is absent, failed
instead under MNIST_SERVE_REQUIRE_BROWSER=1, as in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BOOK_WEIGHTS, require
from tests.e2e.browser import TIMEOUT_MS, chromium
from tests.e2e.conftest import Server, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    weights = require(BOOK_WEIGHTS)
    s = start_server(weights, tmp_path_factory.mktemp("browser-server"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


class Page:
    """A page on the server's UI that records every console error."""

    def __init__(self, browser: Any, server: Server, **context: Any) -> None:
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.url = server.url
        self.errors: list[str] = []
        self.page.on(
            "console",
            lambda m: self.errors.append(m.text) if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
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
            " && document.getElementById('status').textContent.startsWith('The network')",
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

    def close(self, screenshot: Path) -> None:
        self.page.screenshot(path=str(screenshot), full_page=True)
        self.context.close()
        assert screenshot.stat().st_size > 10_000
        assert self.errors == [], self.errors


@pytest.fixture
def desktop(browser: Any, server: Server, tmp_path: Path) -> Iterator[Page]:
    page = Page(browser, server, viewport={"width": 1200, "height": 900})
    yield page
    page.close(tmp_path / "desktop.png")


def test_page_is_served_with_a_strict_csp(desktop: Page) -> None:
    assert "default-src 'self'" in desktop.csp
    assert "script-src 'self'" in desktop.csp
    assert "unsafe-inline" not in desktop.csp
    # The page works under it: the script ran and filled in the explorer.
    desktop.page.wait_for_selector(
        "#act-name option[value='sigmoid']", state="attached"
    )


def test_vertical_stroke_reads_as_one(desktop: Page) -> None:
    desktop.stroke([(0.5, 0.15), (0.5, 0.85)])
    assert desktop.wait_for_label() == "1"
    # The 28x28 the network saw, the saliency map and both hidden layers are drawn.
    assert desktop.lit_pixels("seen") > 20
    assert desktop.lit_pixels("saliency") > 100
    assert desktop.lit_pixels("hidden1") == 50
    assert desktop.lit_pixels("hidden2") == 100
    assert "Saliency of \u201c1\u201d" in str(
        desktop.page.text_content("#saliency-title")
    )


def test_seven_shows_a_label_and_ten_bars(desktop: Page) -> None:
    page = desktop.page
    desktop.stroke([(0.22, 0.2), (0.78, 0.2), (0.45, 0.85)])
    label = desktop.wait_for_label()
    bars = page.locator("#probabilities .bar")
    assert bars.count() == 10
    widths = [
        float(w)
        for w in page.eval_on_selector_all(
            "#probabilities .bar", "bs => bs.map(b => parseFloat(b.style.width))"
        )
    ]
    assert sum(widths) == pytest.approx(100, abs=0.5)
    assert max(range(10), key=widths.__getitem__) == int(label)
    # Choosing another digit shows its saliency map, from the keyboard too.
    other = 3 if label != "3" else 8
    page.focus(f"#probabilities .prob[data-digit='{other}']")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "d => document.getElementById('saliency-title').textContent.includes(d)",
        arg=f"\u201c{other}\u201d",
    )
    assert page.get_attribute(f".prob[data-digit='{other}']", "aria-pressed") == "true"
    # Clear, from the keyboard.
    page.focus("#clear")
    page.keyboard.press("Enter")
    assert page.text_content("#label") == "\u2013"
    assert page.locator("#probabilities .bar").count() == 0


def test_upload_a_png(desktop: Page, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    # Dark ink on a light background, like a scan: the server normalises it.
    image = np.full((120, 90), 235, dtype=np.uint8)
    image[15:105, 40:50] = 20
    path = tmp_path / "one.png"
    Image.fromarray(image).save(path)
    desktop.page.set_input_files("#upload", str(path))
    assert desktop.wait_for_label() == "1"


def test_activation_explorer_plots_sigmoid(desktop: Page) -> None:
    page = desktop.page
    page.wait_for_function(
        "() => document.getElementById('plot').dataset.name === 'sigmoid'"
    )
    assert page.get_attribute("#plot", "data-points") == "201"
    # The formula and notes of /activations are shown.
    listed = httpx.get(f"{desktop.url}/activations", timeout=10).json()
    sigmoid = next(a for a in listed if a["name"] == "sigmoid")
    assert page.text_content("#act-formula") == sigmoid["formula"]
    assert str(page.text_content("#act-notes")).startswith(sigmoid["notes"])
    # The y curve (blue) and the dy curve (orange) are on the canvas.
    counts = page.evaluate(
        """() => {
          const c = document.getElementById('plot');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let blue = 0, orange = 0;
          for (let i = 0; i < d.length; i += 4) {
            const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
            if (d[i + 3] > 200 && b > 150 && r < 60) blue++;
            if (d[i + 3] > 200 && r > 180 && g < 110 && b < 60) orange++;
          }
          return [blue, orange];
        }"""
    )
    assert counts[0] > 300, counts
    assert counts[1] > 100, counts
    # Another function with a parameter: its input appears and re-plots.
    page.select_option("#act-name", "leaky_relu")
    page.wait_for_function(
        "() => document.getElementById('plot').dataset.name === 'leaky_relu'"
    )
    page.fill("#param-alpha", "0.2")
    page.wait_for_function(
        "() => document.getElementById('act-status').textContent === ''"
    )


def test_phone_width_touch_drawing(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    phone = Page(
        browser,
        server,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = phone.page
    # Nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = page.locator("#canvas").bounding_box()
    assert box is not None
    assert box["width"] > 250
    cdp = phone.context.new_cdp_session(page)
    x = box["x"] + box["width"] / 2
    ys = [box["y"] + box["height"] * f for f in (0.15, 0.3, 0.45, 0.6, 0.75, 0.85)]
    cdp.send(
        "Input.dispatchTouchEvent",
        {"type": "touchStart", "touchPoints": [{"x": x, "y": ys[0]}]},
    )
    for y in ys[1:]:
        cdp.send(
            "Input.dispatchTouchEvent",
            {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]},
        )
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    assert phone.wait_for_label() == "1"
    page.wait_for_function(
        "() => document.getElementById('plot').dataset.name === 'sigmoid'"
    )
    phone.close(tmp_path / "phone.png")
