"""Which bodies are decoded on the event loop and which in the work threads.

Small bodies skip the hop to a thread (it costs more than they do); large
ones, and any image over one small digit's pixels, must never hold up the
loop. The real decoders run; a wrapper only records the thread they ran on.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app import codecs
from app.codecs import images, jsonbody

WORK_THREAD = "mnist-serve-work"


def _png(side: int, dark_on_light: bool = False) -> bytes:
    pixels = np.zeros((side, side), dtype=np.uint8)
    pixels[side // 4 : 3 * side // 4, side // 2 - 2 : side // 2 + 2] = 255
    if dark_on_light:
        pixels = 255 - pixels
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def threads_seen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def recording(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            seen.append(threading.current_thread().name)
            return fn(*args)

        return run

    monkeypatch.setattr(images, "decode_images", recording(images.decode_images))
    monkeypatch.setattr(jsonbody, "fast_predict", recording(jsonbody.fast_predict))
    return seen


def _predict(client: TestClient, body: bytes, media: str) -> None:
    response = client.post("/predict", content=body, headers={"content-type": media})
    assert response.status_code == 200, response.text


def test_one_small_digit_is_decoded_on_the_loop(
    client: TestClient, threads_seen: list[str]
) -> None:
    assert 28 * 28 <= codecs.INLINE_IMAGE_PIXELS
    _predict(client, _png(28, dark_on_light=True), "image/png")
    assert len(threads_seen) == 1
    assert not threads_seen[0].startswith(WORK_THREAD)


def test_a_larger_image_is_decoded_in_a_work_thread(
    client: TestClient, threads_seen: list[str]
) -> None:
    side = 64
    assert side * side > codecs.INLINE_IMAGE_PIXELS
    _predict(client, _png(side), "image/png")
    assert len(threads_seen) == 1
    assert threads_seen[0].startswith(WORK_THREAD)


def test_several_small_files_over_the_pixel_bound_go_to_a_thread(
    client: TestClient, threads_seen: list[str]
) -> None:
    files = [("file", (f"d{i}.png", _png(28), "image/png")) for i in range(3)]
    assert 3 * 28 * 28 > codecs.INLINE_IMAGE_PIXELS
    response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    assert len(response.json()["labels"]) == 3
    assert len(threads_seen) == 1
    assert threads_seen[0].startswith(WORK_THREAD)


def test_json_over_the_inline_size_is_parsed_in_a_work_thread(
    client: TestClient, threads_seen: list[str]
) -> None:
    small = b'{"x": [' + b",".join([b"0.5"] * 784) + b"]}"
    _predict(client, small, "application/json")
    rows = ",".join(["[" + ",".join(["0.1234567890123456789012"] * 784) + "]"] * 64)
    large = f'{{"x": [{rows}]}}'.encode()
    assert len(large) > codecs.INLINE_BYTES
    _predict(client, large, "application/json")
    assert len(threads_seen) == 2
    assert not threads_seen[0].startswith(WORK_THREAD)
    assert threads_seen[1].startswith(WORK_THREAD)
