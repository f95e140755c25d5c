"""Render MNIST test digits as the image files people actually upload.

Each entry of :data:`VARIANTS` takes one 28x28 MNIST image (white ink on
black, uint8) and a random generator, and returns the bytes of an encoded
image file imitating one kind of user input: a scan, a phone photo, a browser
canvas export, a small digit on a wide canvas, palette and 16-bit PNGs, JPEG,
GIF, WebP, BMP. The fidelity benchmark feeds them through the server's
preprocessing and compares the accuracy with the network on the original
MNIST pixels.

The drawings are made from the MNIST digit itself: upscaled with bicubic
interpolation and, for "drawn" strokes, cut at an iso-level with a narrow
anti-aliasing ramp, so the stroke outline follows the digit's shape while its
width can be made thicker or thinner than MNIST's.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

FloatArray = NDArray[np.float32]
Render = Callable[[NDArray[np.uint8], np.random.Generator], bytes]


# --------------------------------------------------------------------------
# Drawing helpers
# --------------------------------------------------------------------------


def upscale(image: NDArray[np.uint8], size: int) -> FloatArray:
    """Bicubic upscale of a 28x28 uint8 image to ``size`` x ``size`` in [0, 1]."""
    source = Image.fromarray(image.astype(np.float32) / np.float32(255.0))
    big = np.asarray(source.resize((size, size), Image.Resampling.BICUBIC))
    out: FloatArray = np.clip(big, 0.0, 1.0).astype(np.float32)
    return out


def strokes(smooth: FloatArray, level: float = 0.5, ramp: float = 0.1) -> FloatArray:
    """Solid strokes: 1 inside the ``level`` iso-line, anti-aliased over ``ramp``."""
    out: FloatArray = np.clip((smooth - level) / ramp + 0.5, 0.0, 1.0)
    return out.astype(np.float32)


def dilate(ink: FloatArray, steps: int) -> FloatArray:
    """Grayscale dilation by a 3x3 cross, ``steps`` times (a thicker pen)."""
    out = ink
    for _ in range(steps):
        padded = np.pad(out, 1)
        out = np.maximum.reduce(
            [
                padded[1:-1, 1:-1],
                padded[:-2, 1:-1],
                padded[2:, 1:-1],
                padded[1:-1, :-2],
                padded[1:-1, 2:],
            ]
        )
    return out


def place(ink: FloatArray, shape: tuple[int, int], top: int, left: int) -> FloatArray:
    """Paste ``ink`` into an empty canvas of ``shape`` at (top, left)."""
    canvas = np.zeros(shape, dtype=np.float32)
    height, width = ink.shape
    canvas[top : top + height, left : left + width] = ink
    return canvas


def to_u8(values: FloatArray) -> NDArray[np.uint8]:
    """Gray levels in [0, 1] to rounded uint8."""
    out: NDArray[np.uint8] = np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """Encode ``image`` as ``fmt``; PNGs use fast zlib settings (same pixels)."""
    if fmt == "PNG":
        options.setdefault("compress_level", 1)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def on_paper(ink: FloatArray, paper: float = 1.0, pen: float = 0.0) -> FloatArray:
    """Gray levels of ``ink`` (0..1 coverage) drawn with ``pen`` on ``paper``."""
    return (paper + (pen - paper) * ink).astype(np.float32)


def random_placement(
    rng: np.random.Generator, shape: tuple[int, int], size: int, margin: int
) -> tuple[int, int]:
    top = int(rng.integers(margin, shape[0] - size - margin + 1))
    left = int(rng.integers(margin, shape[1] - size - margin + 1))
    return top, left


# --------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------


def png28_gray(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """The MNIST crop itself: 28x28 8-bit grayscale PNG, white on black."""
    return encode(Image.fromarray(image), "PNG")


def png28_inverted_rgb(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """The MNIST crop as black ink on white, RGB."""
    gray = 255 - image
    return encode(Image.fromarray(np.stack([gray] * 3, axis=-1)), "PNG")


def scan_rgb_280(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """A 280x280 black-on-white RGB scan: the digit upscaled 10x, soft edges."""
    gray = to_u8(on_paper(upscale(image, 280)))
    return encode(Image.fromarray(np.stack([gray] * 3, axis=-1)), "PNG")


def offcentre_wide(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """A small dark digit somewhere on a wide white 800x240 canvas."""
    size = int(rng.integers(40, 91))
    ink = strokes(upscale(image, size))
    shape = (240, 800)
    top, left = random_placement(rng, shape, size, 4)
    return encode(Image.fromarray(to_u8(on_paper(place(ink, shape, top, left)))), "PNG")


def canvas_rgba(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """A browser canvas export: dark strokes on a *transparent* 280x280 canvas.

    The transparent pixels store black (0, 0, 0, 0), as canvases do, so a
    decoder that drops alpha sees black ink on black.
    """
    size = int(rng.integers(170, 241))
    ink = strokes(upscale(image, size), level=0.4)
    top, left = random_placement(rng, (280, 280), size, 0)
    alpha = to_u8(place(ink, (280, 280), top, left))
    colour = [(0, 0, 0), (25, 25, 25), (20, 40, 140)][int(rng.integers(3))]
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    drawn = alpha > 0
    rgba[drawn, :3] = colour
    rgba[..., 3] = alpha
    return encode(Image.fromarray(rgba), "PNG")


def canvas_rgba_light(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """White strokes on a transparent canvas (a dark-themed drawing app)."""
    size = int(rng.integers(170, 241))
    ink = strokes(upscale(image, size), level=0.4)
    top, left = random_placement(rng, (280, 280), size, 0)
    alpha = to_u8(place(ink, (280, 280), top, left))
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[alpha > 0, :3] = 255
    rgba[..., 3] = alpha
    return encode(Image.fromarray(rgba), "PNG")


def photo_jpeg(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """A phone photo of a digit on paper: light grey, uneven light, noise, JPEG."""
    height, width = 300, 400
    size = int(rng.integers(110, 201))
    ink = strokes(upscale(image, size), level=float(rng.uniform(0.35, 0.55)))
    radius = rng.uniform(0.6, 1.6)  # slightly out of focus
    blurred = Image.fromarray(to_u8(ink)).filter(ImageFilter.GaussianBlur(radius))
    ink = np.asarray(blurred, dtype=np.float32) / np.float32(255.0)
    top, left = random_placement(rng, (height, width), size, 10)
    ink = place(ink, (height, width), top, left)
    rows = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    cols = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    angle = rng.uniform(0.0, 2.0 * np.pi)
    # Light falls off across the sheet and towards the corners.
    shade = (
        1.0
        + np.float32(rng.uniform(0.05, 0.2))
        * (np.float32(np.cos(angle)) * cols + np.float32(np.sin(angle)) * rows)
        - np.float32(rng.uniform(0.0, 0.2)) * (rows**2 + cols**2) / 2.0
    )
    gray = shade * on_paper(ink, rng.uniform(0.6, 0.85), rng.uniform(0.08, 0.3))
    cast = np.array([1.0, rng.uniform(0.93, 1.0), rng.uniform(0.82, 0.95)], np.float32)
    noise = rng.standard_normal((height, width, 3), dtype=np.float32)
    noise *= np.float32(rng.uniform(0.015, 0.04))
    noise += gray[..., None] * cast
    quality = int(rng.integers(60, 91))
    return encode(Image.fromarray(to_u8(noise)), "JPEG", quality=quality)


def thick_ink(image: NDArray[np.uint8]) -> FloatArray:
    """The ink of :func:`thick_strokes`."""
    return dilate(strokes(upscale(image, 240), level=0.3), 5)


def thick_strokes(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """A marker drawing: strokes about 1.5 times MNIST's width, 280x280."""
    ink = place(thick_ink(image), (280, 280), 20, 20)
    return encode(Image.fromarray(to_u8(on_paper(ink))), "PNG")


def thin_ink(image: NDArray[np.uint8]) -> FloatArray:
    """The ink of :func:`thin_strokes`."""
    return strokes(upscale(image, 240), level=0.75, ramp=0.05)


def thin_strokes(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """A fine pen drawing: strokes about 3/4 of MNIST's width, 280x280."""
    ink = place(thin_ink(image), (280, 280), 20, 20)
    return encode(Image.fromarray(to_u8(on_paper(ink))), "PNG")


def white_on_black(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """White chalk on a dark board: light strokes on a dark 224x224 image."""
    size = int(rng.integers(120, 201))
    ink = strokes(upscale(image, size))
    top, left = random_placement(rng, (224, 224), size, 0)
    gray = on_paper(place(ink, (224, 224), top, left), paper=0.12, pen=0.95)
    return encode(Image.fromarray(to_u8(gray)), "PNG")


def palette_png(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """Blue ink on cream paper, 140x140, saved as a 16-colour palette PNG."""
    ink = upscale(image, 140)[..., None]
    paper = np.array([0.98, 0.96, 0.9], np.float32)
    pen = np.array([0.1, 0.2, 0.75], np.float32)
    rgb = Image.fromarray(to_u8(paper + (pen - paper) * ink))
    return encode(rgb.quantize(16), "PNG")


def png16_gray(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """A 16-bit grayscale PNG, black on white, 112x112."""
    gray = on_paper(upscale(image, 112))
    pixels = np.rint(gray * 65535.0).astype(np.uint16)
    return encode(Image.fromarray(pixels), "PNG")


def jpeg_scan(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """A 280x280 black-on-white scan saved as a low-quality (50) JPEG."""
    gray = to_u8(on_paper(upscale(image, 280)))
    return encode(Image.fromarray(gray), "JPEG", quality=50)


def gif_first_frame(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """A two-frame GIF, 112x112: the digit, then a blank frame to be ignored."""
    gray = Image.fromarray(to_u8(on_paper(strokes(upscale(image, 112)))))
    blank = Image.new("L", gray.size, 255)
    return encode(gray, "GIF", save_all=True, append_images=[blank], duration=500)


def webp_lossy(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """A lossy WebP (quality 70), 200x200, dark grey ink on white."""
    gray = to_u8(on_paper(strokes(upscale(image, 200)), pen=0.15))
    return encode(Image.fromarray(gray), "WEBP", quality=70)


def bmp_small(image: NDArray[np.uint8], rng: np.random.Generator) -> bytes:
    """A 56x56 24-bit BMP, black on white."""
    gray = to_u8(on_paper(upscale(image, 56)))
    return encode(Image.fromarray(np.stack([gray] * 3, axis=-1)), "BMP")


VARIANTS: dict[str, Render] = {
    "png28_gray": png28_gray,
    "png28_inverted_rgb": png28_inverted_rgb,
    "scan_rgb_280": scan_rgb_280,
    "offcentre_wide": offcentre_wide,
    "canvas_rgba": canvas_rgba,
    "canvas_rgba_light": canvas_rgba_light,
    "photo_jpeg": photo_jpeg,
    "thick_strokes": thick_strokes,
    "thin_strokes": thin_strokes,
    "white_on_black": white_on_black,
    "palette_png": palette_png,
    "png16_gray": png16_gray,
    "jpeg_scan": jpeg_scan,
    "gif_first_frame": gif_first_frame,
    "webp_lossy": webp_lossy,
    "bmp_small": bmp_small,
}
"""Variant name -> renderer ``(image (28, 28) uint8, rng) -> encoded file bytes``."""
