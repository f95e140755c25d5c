"""Renderings of the cases that used to fail: tight crops, full frames, low
resolution, uneven light.

Each rendering here is split in two: :func:`Hard.draw` makes the *ink* (the
digit's coverage, 1 = ink, on a canvas of the final size, before any lighting,
polarity, noise or encoding) and :func:`Hard.finish` turns it into the file a
person would send. The ink is what a preprocessing with perfect knowledge of
the rendering would recover, so :mod:`bench.image_reference` starts from it.

Every drawing works on a square uint8 digit of any size, white on black: a
28x28 MNIST digit or an 8x8 optdigits one (see :mod:`bench.image_sources`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from bench.image_variants import (
    FloatArray,
    dilate,
    encode,
    on_paper,
    place,
    strokes,
    to_u8,
)

Draw = Callable[[NDArray[np.uint8], np.random.Generator], FloatArray]
Finish = Callable[[FloatArray, np.random.Generator], bytes]


def tight(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The square crop around the digit's ink (its longer side), nothing more."""
    rows = np.flatnonzero(image.max(axis=1) > 0)
    cols = np.flatnonzero(image.max(axis=0) > 0)
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = max(bottom - top, right - left)
    out = np.zeros((side, side), dtype=np.uint8)
    r0, c0 = (side - (bottom - top)) // 2, (side - (right - left)) // 2
    out[r0 : r0 + bottom - top, c0 : c0 + right - left] = image[top:bottom, left:right]
    return out


def resize(image: NDArray[np.uint8], size: int, method: str = "bicubic") -> FloatArray:
    """``image`` resized to ``size`` x ``size``, in [0, 1]."""
    resample = {
        "nearest": Image.Resampling.NEAREST,
        "bilinear": Image.Resampling.BILINEAR,
        "bicubic": Image.Resampling.BICUBIC,
        "box": Image.Resampling.BOX,
    }[method]
    source = Image.fromarray(image.astype(np.float32) / np.float32(255.0))
    out = np.asarray(source.resize((size, size), resample), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def lowres(image: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.uint8]:
    """The digit as a thumbnail whose longer side is 8 to 16 pixels."""
    side = int(rng.integers(8, 17))
    crop = tight(image)
    if crop.shape[0] <= side:
        return crop
    return to_u8(resize(crop, side, "box"))


def light(shape: tuple[int, int], rng: np.random.Generator, kind: str) -> FloatArray:
    """A lighting field in (0, 1]: a gradient across the sheet or a vignette."""
    height, width = shape
    rows = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    cols = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    if kind == "gradient":
        angle = rng.uniform(0.0, 2.0 * np.pi)
        ramp = np.float32(np.cos(angle)) * cols + np.float32(np.sin(angle)) * rows
        dark = np.float32(rng.uniform(0.35, 0.6))  # the dark side's light level
        field = 1.0 - (1.0 - dark) * (1.0 - ramp) / 2.0
    else:
        falloff = np.float32(rng.uniform(0.25, 0.5))  # light lost at the corners
        field = 1.0 - falloff * (rows**2 + cols**2) / 2.0
    return np.broadcast_to(field, shape).astype(np.float32)


def noisy(gray: FloatArray, rng: np.random.Generator, sigma: float) -> FloatArray:
    noise = rng.standard_normal(gray.shape, dtype=np.float32) * np.float32(sigma)
    return (gray + noise).astype(np.float32)


# --------------------------------------------------------------------------
# Drawings (ink on the final canvas)
# --------------------------------------------------------------------------


def tight_at(size: int, method: str = "bicubic") -> Draw:
    def draw(image: NDArray[np.uint8], rng: np.random.Generator) -> FloatArray:
        return resize(tight(image), size, method)

    return draw


def page(image: NDArray[np.uint8], rng: np.random.Generator) -> FloatArray:
    """A digit 90-150 pixels tall somewhere on a 200x200 page."""
    size = int(rng.integers(90, 151))
    top, left = (int(v) for v in rng.integers(5, 200 - size - 5, size=2))
    return place(resize(tight(image), size), (200, 200), top, left)


def offcentre28(image: NDArray[np.uint8], rng: np.random.Generator) -> FloatArray:
    """A 28x28 frame holding the digit 14-20 pixels tall, pushed off centre."""
    size = int(rng.integers(14, 21))
    top, left = (int(v) for v in rng.integers(0, 28 - size + 1, size=2))
    return place(resize(tight(image), size, "bilinear"), (28, 28), top, left)


def lowres_at(method: str) -> Draw:
    def draw(image: NDArray[np.uint8], rng: np.random.Generator) -> FloatArray:
        small = lowres(image, rng)
        size = 112 - 112 % small.shape[0] if method == "nearest" else 112
        ink = resize(small, size, method)
        return place(ink, (128, 128), (128 - size) // 2, (128 - size) // 2)

    return draw


def thick_tight(image: NDArray[np.uint8], rng: np.random.Generator) -> FloatArray:
    """A marker drawing cropped tight, 112x112."""
    return np.pad(dilate(strokes(resize(tight(image), 104), 0.3), 3), 4)


# --------------------------------------------------------------------------
# Finishes (ink -> file)
# --------------------------------------------------------------------------


def dark_on_light(ink: FloatArray, rng: np.random.Generator) -> bytes:
    return encode(Image.fromarray(to_u8(on_paper(ink))), "PNG")


def light_on_dark(ink: FloatArray, rng: np.random.Generator) -> bytes:
    return encode(Image.fromarray(to_u8(ink)), "PNG")


def lit(kind: str) -> Finish:
    """Gray pencil on paper under a light ``kind``, sensor noise, JPEG."""

    def finish(ink: FloatArray, rng: np.random.Generator) -> bytes:
        paper, pen = rng.uniform(0.8, 0.95), rng.uniform(0.1, 0.35)
        gray = light(ink.shape, rng, kind) * on_paper(ink, paper, pen)
        gray = noisy(gray, rng, rng.uniform(0.01, 0.03))
        return encode(Image.fromarray(to_u8(gray)), "JPEG", quality=85)

    return finish


@dataclass(frozen=True, slots=True)
class Hard:
    """A rendering as its ink drawing and the file made from it."""

    draw: Draw
    finish: Finish
    doc: str

    def __call__(self, image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
        return self.finish(self.draw(image, rng), rng)


HARD: dict[str, Hard] = {
    "page_200": Hard(page, dark_on_light, "on a 200x200 page with margins"),
    "tight_28_nearest": Hard(
        tight_at(28, "nearest"), dark_on_light, "cropped tight, 28x28, nearest"
    ),
    "tight_56": Hard(tight_at(56), dark_on_light, "cropped tight, 56x56"),
    "tight_112": Hard(tight_at(112), dark_on_light, "cropped tight, 112x112"),
    "tight_200": Hard(tight_at(200), dark_on_light, "cropped tight, 200x200"),
    "frame28_white_on_black": Hard(
        tight_at(28, "bilinear"), light_on_dark, "white on black filling 28x28"
    ),
    "frame112_white_on_black": Hard(
        tight_at(112), light_on_dark, "white on black filling 112x112"
    ),
    "offcentre28": Hard(offcentre28, light_on_dark, "28x28, small and off centre"),
    "lowres_nearest": Hard(
        lowres_at("nearest"), dark_on_light, "8-16 px thumbnail, nearest upscale"
    ),
    "lowres_bilinear": Hard(
        lowres_at("bilinear"), dark_on_light, "8-16 px thumbnail, bilinear upscale"
    ),
    "thick_tight": Hard(thick_tight, dark_on_light, "marker strokes, tight, 112"),
    "gradient_page": Hard(page, lit("gradient"), "page under a lighting gradient"),
    "vignette_page": Hard(page, lit("vignette"), "page under a vignette"),
    "gradient_tight": Hard(
        tight_at(112), lit("gradient"), "tight crop under a lighting gradient"
    ),
    "vignette_tight": Hard(tight_at(112), lit("vignette"), "tight crop, vignette"),
}
"""Name -> rendering (:data:`bench.image_fidelity.RENDERINGS` adds these)."""
