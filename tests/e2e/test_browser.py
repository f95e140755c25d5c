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
from tests.e2e.browser import Page, chromium
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


def _draw_seven(size: tuple[int, int] = (600, 800)) -> Any:
    """A photo-like 7: dark pen on off-white paper with some noise, as RGB."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    w, h = size
    paper = Image.new("RGB", size, (226, 222, 212))
    pen = ImageDraw.Draw(paper)
    width = w // 18
    pen.line([(0.25 * w, 0.3 * h), (0.75 * w, 0.3 * h)], fill=(40, 40, 60), width=width)
    pen.line(
        [(0.75 * w, 0.3 * h), (0.42 * w, 0.75 * h)], fill=(40, 40, 60), width=width
    )
    noise = np.random.default_rng(0).normal(0, 6, (h, w, 1))
    pixels = np.clip(np.asarray(paper, dtype=np.float64) + noise, 0, 255)
    return Image.fromarray(pixels.astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))


def test_upload_button_takes_every_image_type(desktop: Page) -> None:
    page = desktop.page
    assert page.get_attribute("#upload", "accept") == "image/*"
    label = str(page.text_content("label[for='upload']"))
    assert "image" in label
    assert "PNG" not in label
    assert "JPEG" in str(page.text_content("#upload-formats"))


def test_upload_a_jpeg(desktop: Page, tmp_path: Path) -> None:
    path = tmp_path / "seven.jpg"
    _draw_seven().save(path, "JPEG", quality=85)
    with desktop.page.expect_request(lambda r: "/predict" in r.url) as request:
        desktop.page.set_input_files("#upload", str(path))
    assert request.value.headers["content-type"] == "image/jpeg"
    assert desktop.wait_for_label() == "7"
    # The photo is shown on the pad, and the network's 28x28 view of it.
    assert desktop.lit_pixels("seen") > 30


def test_blank_image_clears_the_answer_and_says_what_to_do(
    desktop: Page, tmp_path: Path
) -> None:
    from PIL import Image

    desktop.stroke([(0.5, 0.15), (0.5, 0.85)])
    assert desktop.wait_for_label() == "1"
    # What the pad exports when nothing is drawn: a white 560x560 PNG.
    blank = tmp_path / "blank.png"
    Image.new("RGB", (560, 560), "white").save(blank)
    desktop.expect_failures(422)
    desktop.page.set_input_files("#upload", str(blank))
    message = desktop.error_status()
    assert message.startswith("No digit found")
    assert "darker or larger" in message
    desktop.assert_answer_cleared()
    # The API's own wording is there, folded away, not as the message.
    assert "uniform" not in message
    details = desktop.page.locator("#status-details")
    assert details.is_visible()
    assert "uniform" in str(details.locator("#status-detail").text_content())
    assert details.get_attribute("open") is None


def test_text_file_clears_the_answer_and_says_what_to_do(
    desktop: Page, tmp_path: Path
) -> None:
    desktop.stroke([(0.22, 0.2), (0.78, 0.2), (0.45, 0.85)])
    desktop.wait_for_label()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture of a digit\n")
    desktop.expect_failures(400, 415)
    desktop.page.set_input_files("#upload", str(notes))
    message = desktop.error_status()
    assert message.startswith("This file is not an image")
    assert "PNG, JPEG" in message
    desktop.assert_answer_cleared()
    desktop.page.screenshot(path=str(tmp_path / "text-file-error.png"))
    # The pad no longer shows the old drawing as if it were the input.
    assert desktop.lit_pixels("canvas") == 560 * 560  # all white, no ink
    assert (
        desktop.page.evaluate(
            """() => {
              const c = document.getElementById('canvas');
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              return d.every(v => v === 255);
            }"""
        )
        is True
    )
    # A new drawing works again after the failure.
    desktop.page.click("#clear")
    desktop.stroke([(0.5, 0.15), (0.5, 0.85)])
    assert desktop.wait_for_label() == "1"
    assert desktop.page.get_attribute("#status-details", "hidden") is not None


def test_saliency_is_drawn_over_the_digit_with_a_legend(desktop: Page) -> None:
    page = desktop.page
    desktop.stroke([(0.22, 0.2), (0.78, 0.2), (0.45, 0.85)])
    label = desktop.wait_for_label()
    saliency = page.locator("#saliency")
    assert saliency.get_attribute("data-mode") == "evidence"
    assert saliency.get_attribute("data-target") == label
    assert page.text_content("#legend-positive") == f"for \u201c{label}\u201d"
    assert page.text_content("#legend-negative") == f"against \u201c{label}\u201d"
    assert "orange" in str(page.text_content("#saliency-caption"))

    def counts() -> tuple[int, int, int]:
        white = orange = blue = 0
        for r, g, b, _ in desktop.pixels("saliency"):
            if min(r, g, b) > 245:
                white += 1
            elif r > b + 60 and r > g:
                orange += 1
            elif b > r + 60:
                blue += 1
        return white, orange, blue

    # Gradient x input: colour only on and next to the ink, which pushes
    # towards the predicted digit overall; the paper stays white.
    white, orange, blue = counts()
    area = 280 * 280
    assert white > 0.5 * area
    assert orange > 2000
    assert orange > blue
    # The raw gradient: where more ink would help, so colour off the ink too.
    page.check("input[name='saliency-mode'][value='gradient']")
    page.wait_for_function(
        "() => document.getElementById('saliency').dataset.mode === 'gradient'"
    )
    assert "more ink" in str(page.text_content("#saliency-caption"))
    g_white, g_orange, g_blue = counts()
    assert g_white < white
    assert g_orange + g_blue > orange + blue
    # Another digit's map: the legend says which.
    other = "3" if label != "3" else "8"
    page.click(f"#probabilities .prob[data-digit='{other}']")
    page.wait_for_function(
        "d => document.getElementById('saliency').dataset.target === d", arg=other
    )
    assert page.text_content("#legend-positive") == f"for \u201c{other}\u201d"


def test_maxout_derivative_marks_each_groups_winner(desktop: Page) -> None:
    page = desktop.page
    page.wait_for_selector("#act-name option[value='maxout']", state="attached")
    page.select_option("#act-name", "maxout")
    page.wait_for_function(
        "() => document.getElementById('plot').dataset.name === 'maxout'"
    )
    plot = page.locator("#plot")
    # k = 2: 40 groups of 2 points, one winner (dy = 1) marked in each.
    assert plot.get_attribute("data-points") == "80"
    assert plot.get_attribute("data-groups") == "40"
    assert plot.get_attribute("data-winners") == "40"
    for k, groups in (("5", 40), ("50", 4)):
        page.fill("#param-k", k)
        page.wait_for_function(
            "k => document.getElementById('plot').dataset.k === k", arg=k
        )
        assert plot.get_attribute("data-points") == str(int(k) * groups)
        assert plot.get_attribute("data-groups") == str(groups)
        assert plot.get_attribute("data-winners") == str(groups)
    # Back to a plain function: no group markers.
    page.select_option("#act-name", "relu")
    page.wait_for_function(
        "() => document.getElementById('plot').dataset.name === 'relu'"
    )
    assert plot.get_attribute("data-groups") is None


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
