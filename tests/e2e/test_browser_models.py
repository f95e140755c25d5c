"""The page with several models: the picker, every model's answer side by
side, the links to the activation explorer, models that go away, and one model.

Real headless Chromium against real ``mnist-serve`` processes (see
tests/e2e/browser.py for when these skip). The models are made here with
weights the test controls: three of them read a fixed digit whatever is
drawn (random hidden layers, an output layer that ignores them), so the test
knows who agrees and who disagrees. The book's weights join when
``../shared/data`` holds them; otherwise a random-weight model takes their
place, so the tests always run.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from core.network import NUM_CLASSES, Network
from core.weights import save_network, sha256_file
from tests.conftest import BOOK_WEIGHTS, random_network
from tests.e2e.browser import Page, chromium
from tests.e2e.conftest import Server, start_server

pytestmark = pytest.mark.e2e

TOKEN = "page-test-admin-token"
ONE = [(0.5, 0.15), (0.5, 0.85)]  # a vertical stroke
# What each controlled model reads, whatever the drawing.
FIXED = {"mnist": 7, "seven-relu": 7, "two-tanh": 2}
MNIST_ACCURACY = 0.1028  # what a constant 7 scores: 1,028 of the 10,000 test digits


def fixed_network(label: int, activation: str, seed: int) -> Network:
    """Random hidden layers and an output layer that ignores them: softmax of
    a bias alone, so ``label`` wins for every input."""
    params = dict(
        random_network(np.random.default_rng(seed), hidden_activation=activation)
        .params()
        .items()
    )
    params["W3"] = np.zeros_like(params["W3"])
    bias = np.zeros(NUM_CLASSES, dtype=np.float32)
    bias[label] = 12.0
    params["b3"] = bias
    return Network.from_params(params, activation)


def _put(repository: Path, name: str, network: Network) -> None:
    directory = repository / name / "1"
    directory.mkdir(parents=True)
    save_network(network, directory / "weights.npz")


def served_models(root: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    """``mnist`` (sigmoid, a single file with its measured accuracy),
    ``seven-relu`` and ``two-tanh`` from a repository, and the book's weights
    (or, without them, a random sigmoid network called ``random``)."""
    mnist = root / "mnist.pkl"
    save_network(fixed_network(FIXED["mnist"], "sigmoid", 1), mnist)
    # Provenance next to the file: how /models learns the test accuracy.
    provenance = {"sha256": sha256_file(mnist), "test_accuracy": MNIST_ACCURACY}
    mnist.with_suffix(".json").write_text(json.dumps(provenance))
    repository = root / "repo"
    _put(repository, "seven-relu", fixed_network(FIXED["seven-relu"], "relu", 2))
    _put(repository, "two-tanh", fixed_network(FIXED["two-tanh"], "tanh", 3))
    args = ["--model-repository", str(repository), *extra]
    if BOOK_WEIGHTS.exists():
        args += ["--model", f"book={BOOK_WEIGHTS}"]
    else:
        _put(repository, "random", random_network(np.random.default_rng(4)))
    return start_server(mnist, root, *args, env=env)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = served_models(tmp_path_factory.mktemp("models-server"))
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


def models_of(server: Server) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.url}/models", timeout=10)
    assert r.status_code == 200
    return list(r.json())


def wait_for_comparison(page: Page) -> None:
    """Until every model has answered or failed, and the main answer is in."""
    page.page.wait_for_function(
        "() => document.getElementById('compare').dataset.disagreements !== undefined"
        " && !document.querySelector('.model-card.waiting')"
    )
    page.wait_for_label()


def cards(page: Page) -> list[dict[str, Any]]:
    """Each comparison card as the page shows it."""
    return list(
        page.page.eval_on_selector_all(
            "#compare-cards .model-card",
            """cs => cs.map(c => ({
                 name: c.dataset.model,
                 label: c.querySelector('.card-label').textContent,
                 disagrees: c.classList.contains('disagrees'),
                 agrees: c.classList.contains('agrees'),
                 picked: c.classList.contains('picked'),
                 verdict: c.querySelector('.verdict').textContent,
                 bars: [...c.querySelectorAll('.mini-bars .bar')]
                         .map(b => parseFloat(b.style.height)),
               }))""",
        )
    )


def canvas_png(page: Page) -> bytes:
    url = page.page.evaluate(
        "() => document.getElementById('canvas').toDataURL('image/png')"
    )
    return base64.b64decode(str(url).split(",", 1)[1])


def test_picker_lists_every_model_with_its_activation_and_accuracy(
    desktop: Page, server: Server
) -> None:
    page = desktop.page
    listed = models_of(server)
    assert len(listed) >= 4
    page.wait_for_selector("#model option", state="attached")
    options = page.eval_on_selector_all(
        "#model option", "os => os.map(o => [o.value, o.textContent])"
    )
    assert [name for name, _ in options] == [m["name"] for m in listed]
    for (_, text), m in zip(options, listed, strict=True):
        assert m["hidden_activation"] in text
        if m["test_accuracy"] is None:
            assert "not measured" in text
        else:
            assert f"{100 * m['test_accuracy']:.2f}%" in text
    # The default model is picked, and the line beside says what it is.
    default = next(m for m in listed if m["default"])
    assert default["name"] == "mnist"
    assert page.input_value("#model") == "mnist"
    info = str(page.text_content("#model-info"))
    assert "10.28%" in info
    assert page.get_attribute("#model-info a.act-link", "data-activation") == "sigmoid"
    # Before any drawing, one card per model, none with an answer.
    assert [c["name"] for c in cards(desktop)] == [m["name"] for m in listed]
    assert all(c["label"] == "\u2013" for c in cards(desktop))


def test_drawing_asks_every_model_at_once_and_marks_who_disagrees(
    desktop: Page, server: Server
) -> None:
    page = desktop.page
    names = [m["name"] for m in models_of(server)]
    events: list[tuple[str, str]] = []
    page.on("request", lambda r: events.append(("sent", r.url)))
    page.on("requestfinished", lambda r: events.append(("done", r.url)))
    page.wait_for_selector("#compare-cards .model-card")
    desktop.stroke(ONE)
    wait_for_comparison(desktop)

    # One request per model, all of them sent before the first answer came.
    predicts = [(kind, url) for kind, url in events if "/predict?" in url]
    sent = [url for kind, url in predicts if kind == "sent"]
    asked = sorted(httpx.URL(url).params["model"] for url in sent)
    assert asked == sorted(names)
    first_done = next(i for i, (kind, _) in enumerate(predicts) if kind == "done")
    assert first_done == len(names), predicts

    shown = cards(desktop)
    assert [c["name"] for c in shown] == names
    png = canvas_png(desktop)
    for card in shown:
        r = httpx.post(
            f"{server.url}/predict",
            params={"model": card["name"]},
            content=png,
            headers={"content-type": "image/png"},
            timeout=10,
        )
        assert r.status_code == 200
        assert r.headers["x-model"] == card["name"]
        answer = r.json()
        # Each card shows that model's own answer to this drawing.
        assert card["label"] == str(answer["label"])
        assert card["bars"] == pytest.approx(
            [100 * p for p in answer["probabilities"]], abs=0.01
        )
        if card["name"] in FIXED:
            assert answer["label"] == FIXED[card["name"]]
    # mnist and seven-relu read 7: the reference whatever the fourth model
    # reads (a tie at 2-2 falls back to the picked model, mnist, which reads 7).
    for card in shown:
        differs = card["label"] != "7"
        assert card["disagrees"] is differs, card
        assert card["agrees"] is not differs, card
        if differs:
            assert card["verdict"].startswith("Disagrees"), card
    two = next(c for c in shown if c["name"] == "two-tanh")
    assert two["disagrees"]
    summary = str(page.text_content("#compare-summary"))
    assert "two-tanh reads 2" in summary
    # The main answer is the picked model's.
    assert page.text_content("#label") == "7"
    assert page.text_content("#answer-title") == "mnist thinks it is"
    assert next(c for c in shown if c["picked"])["name"] == "mnist"


def test_picking_a_model_answers_and_explains_with_it(desktop: Page) -> None:
    page = desktop.page
    desktop.stroke(ONE)
    wait_for_comparison(desktop)
    page.select_option("#model", "two-tanh")
    page.wait_for_function(
        "() => document.getElementById('answer-title').textContent"
        " === 'two-tanh thinks it is'"
    )
    wait_for_comparison(desktop)
    page.wait_for_function(
        "() => document.getElementById('saliency').dataset.target === '2'"
    )
    assert page.text_content("#label") == "2"
    # The layers are drawn on tanh's range, and named after it.
    assert page.text_content("#hidden1-units") == "(50 tanh units)"
    assert page.text_content("#hidden2-units") == "(100 tanh units)"
    assert page.text_content("#scale-low") == "-1"
    assert page.text_content("#scale-high") == "1"
    assert "tanh(" in str(page.text_content("#layer-formula"))
    assert desktop.lit_pixels("hidden1") == 50
    assert page.get_attribute("#model-info a.act-link", "data-activation") == "tanh"
    shown = {c["name"]: c for c in cards(desktop)}
    assert shown["two-tanh"]["picked"]
    # Most models still read 7: two-tanh disagrees with them, picked or not.
    assert shown["two-tanh"]["disagrees"]
    assert not shown["mnist"]["disagrees"]
    # ReLU's layers run from 0 to the largest unit of the drawing.
    page.select_option("#model", "seven-relu")
    page.wait_for_function(
        "() => document.getElementById('hidden1-units').textContent"
        " === '(50 relu units)'"
    )
    assert page.text_content("#scale-low") == "0"
    assert float(str(page.text_content("#scale-high"))) > 0


def test_each_models_activation_opens_in_the_explorer(desktop: Page) -> None:
    page = desktop.page
    page.wait_for_function(
        "() => document.getElementById('plot').dataset.name === 'sigmoid'"
    )
    for model, activation in (("seven-relu", "relu"), ("two-tanh", "tanh")):
        page.click(f".model-card[data-model='{model}'] a.act-link")
        page.wait_for_function(
            "a => document.getElementById('plot').dataset.name === a", arg=activation
        )
        assert page.input_value("#act-name") == activation
        assert page.evaluate("location.hash") == f"#activation={activation}"
        assert f"use {activation}" in str(page.text_content("#act-models"))
        assert model in str(page.text_content("#act-models"))
        # The explorer is in view, and the keyboard is on its function list.
        page.wait_for_function(
            "() => { const r = document.getElementById('explorer-section')"
            ".getBoundingClientRect(); return r.top < innerHeight && r.bottom > 0; }"
        )
        assert page.evaluate("document.activeElement.id") == "act-name"
    # The picker's line links the picked model's activation too.
    page.click("#model-info a.act-link")
    page.wait_for_function(
        "() => document.getElementById('plot').dataset.name === 'sigmoid'"
    )
    # And a shared address opens the explorer on that function.
    page.goto(f"{desktop.url}/#activation=tanh")
    page.wait_for_function(
        "() => document.getElementById('plot').dataset.name === 'tanh'"
    )


def test_a_model_unloaded_while_the_page_is_open(browser: Any, tmp_path: Path) -> None:
    server = served_models(
        tmp_path,
        "--model-control",
        "explicit",
        env={"MNIST_SERVE_ADMIN_TOKEN": TOKEN},
    )
    try:
        desktop = Page(browser, server, viewport={"width": 1200, "height": 900})
        desktop.expect_failures(404)
        page = desktop.page
        page.wait_for_selector(".model-card[data-model='two-tanh']")

        def unload(name: str) -> None:
            r = httpx.post(
                f"{server.url}/v2/repository/models/{name}/unload",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            )
            assert r.status_code == 200, r.text
            assert name not in [m["name"] for m in models_of(server)]

        # A model the page still lists is gone: its card says so, the others answer.
        unload("two-tanh")
        desktop.stroke(ONE)
        wait_for_comparison(desktop)
        shown = {c["name"]: c for c in cards(desktop)}
        assert shown["two-tanh"]["verdict"] == "This model is no longer served."
        assert shown["two-tanh"]["label"] == "\u2013"
        assert shown["mnist"]["label"] == "7"
        assert shown["seven-relu"]["label"] == "7"
        assert "two-tanh did not answer" in str(page.text_content("#compare-summary"))
        assert page.text_content("#label") == "7"
        # The page read /models again: the picker no longer offers it.
        page.wait_for_function(
            "() => ![...document.querySelectorAll('#model option')]"
            ".some(o => o.value === 'two-tanh')"
        )

        # The picked model goes: the main answer says so in plain words, and
        # the picker falls back to the default.
        page.select_option("#model", "seven-relu")
        wait_for_comparison(desktop)
        unload("seven-relu")
        page.click("#predict")
        status = desktop.error_status()
        assert status.startswith("\u201cseven-relu\u201d is no longer served")
        assert page.text_content("#label") == "\u2013"
        page.wait_for_function(
            "() => document.getElementById('model').value === 'mnist'"
        )
        shown = {c["name"]: c for c in cards(desktop)}
        assert shown["seven-relu"]["verdict"] == "This model is no longer served."
        # It keeps working on what is left.
        page.click("#predict")
        page.wait_for_function(
            "() => document.getElementById('answer-title').textContent"
            " === 'mnist thinks it is'"
        )
        desktop.wait_for_label()
        assert [c["name"] for c in cards(desktop)] == [
            m["name"] for m in models_of(server)
        ]
        desktop.close(tmp_path / "unloaded.png")
    finally:
        server.stop()


def test_one_model_shows_no_comparison(browser: Any, tmp_path: Path) -> None:
    weights = tmp_path / "only.pkl"
    save_network(random_network(np.random.default_rng(9)), weights)
    server = start_server(weights, tmp_path)
    try:
        desktop = Page(browser, server, viewport={"width": 1200, "height": 900})
        page = desktop.page
        page.wait_for_selector("#model option", state="attached")
        assert page.eval_on_selector_all("#model option", "os => os.length") == 1
        assert page.is_disabled("#model")
        assert page.is_hidden("#compare")
        desktop.stroke(ONE)
        desktop.wait_for_label()
        assert page.is_hidden("#compare")
        assert page.locator("#compare-cards .model-card").count() == 0
        assert page.text_content("#answer-title") == "It thinks it is"
        assert str(page.text_content("#status")).startswith("The network reads")
        assert desktop.lit_pixels("hidden1") == 50
        desktop.close(tmp_path / "one-model.png")
    finally:
        server.stop()


def test_phone_width_compares_in_two_columns(
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
    page.wait_for_selector("#compare-cards .model-card")
    phone.stroke([(0.22, 0.2), (0.78, 0.2), (0.45, 0.85)])
    wait_for_comparison(phone)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    boxes = [
        page.locator(f".model-card[data-model='{c['name']}']").bounding_box()
        for c in cards(phone)
    ]
    lefts = sorted({round(b["x"]) for b in boxes if b is not None})
    assert len(lefts) == 2, lefts
    phone.close(tmp_path / "phone.png")
