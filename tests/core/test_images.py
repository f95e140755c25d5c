"""Tests of core.images: decoding uploads and MNIST-style normalisation."""

from __future__ import annotations

import dataclasses
import io
import struct
import time
import warnings
import zlib

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from core.errors import (
    EmptyImageError,
    ImageDecodeError,
    InputError,
    LimitExceededError,
    UnsupportedImageError,
)
from core.images import (
    MNIST_CENTRE,
    ImageLimits,
    decode_image,
    image_to_input,
    is_mnist_like,
    normalize_mnist,
    to_mnist,
)
from core.mnist import load_mnist, to_float
from tests.conftest import BOOK_WEIGHTS, MNIST_DIR, require

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def pattern(height: int = 24, width: int = 32) -> NDArray[np.uint8]:
    """Every gray level appears, plus pure black and white blocks."""
    values = (np.arange(height * width) * 7 % 256).astype(np.uint8)
    image = values.reshape(height, width)
    image[:4, :4] = 0
    image[-4:, -4:] = 255
    return image


def seven(
    size: tuple[int, int] = (120, 160),
    box: tuple[int, int, int, int] = (30, 20, 90, 140),
    width: int = 10,
) -> NDArray[np.float32]:
    """Ink coverage (1 = ink) of a "7" drawn inside ``box`` (left, top, right, bottom).

    Its mass sits high and to the right, away from its bounding-box centre.
    """
    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = box
    draw.line([(left, top), (right, top)], fill=255, width=width)
    draw.line(
        [(right, top), (left + (right - left) // 3, bottom)], fill=255, width=width
    )
    return np.asarray(canvas, dtype=np.float32) / np.float32(255.0)


def gray_png(gray: NDArray[np.float32]) -> bytes:
    return encode(Image.fromarray(np.rint(gray * 255).astype(np.uint8)))


def centre_of_mass(image: NDArray[np.float32]) -> tuple[float, float]:
    mass = image.sum(dtype=np.float64)
    rows = image.sum(axis=1, dtype=np.float64) @ np.arange(image.shape[0]) / mass
    cols = image.sum(axis=0, dtype=np.float64) @ np.arange(image.shape[1]) / mass
    return float(rows), float(cols)


def bbox(image: NDArray[np.float32], level: float) -> tuple[int, int, int, int]:
    rows = np.flatnonzero((image > level).any(axis=1))
    cols = np.flatnonzero((image > level).any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` 8-bit gray pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def mnist_test() -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    require(MNIST_DIR)
    return load_mnist(MNIST_DIR, "t10k")


# --------------------------------------------------------------------------
# Decoding: formats and modes
# --------------------------------------------------------------------------


def _palette_image(gray: NDArray[np.uint8]) -> Image.Image:
    image = Image.fromarray(gray).convert("P")
    image.putpalette([level for i in range(256) for level in (i, i, i)])
    image.putdata(gray.ravel().tolist())
    return image


LOSSLESS = {
    "png-L": lambda g: encode(Image.fromarray(g)),
    "png-RGB": lambda g: encode(Image.fromarray(np.stack([g] * 3, axis=-1))),
    "png-RGBA-opaque": lambda g: encode(
        Image.fromarray(np.stack([g, g, g, np.full_like(g, 255)], axis=-1))
    ),
    "png-LA-opaque": lambda g: encode(
        Image.fromarray(np.stack([g, np.full_like(g, 255)], axis=-1), "LA")
    ),
    "png-P": lambda g: encode(_palette_image(g)),
    "png-I16": lambda g: encode(Image.fromarray(g.astype(np.uint16) * 257)),
    "bmp-RGB": lambda g: encode(Image.fromarray(np.stack([g] * 3, axis=-1)), "BMP"),
    "gif-L": lambda g: encode(Image.fromarray(g), "GIF"),
    "webp-lossless": lambda g: encode(
        Image.fromarray(np.stack([g] * 3, axis=-1)), "WEBP", lossless=True
    ),
}


@pytest.mark.parametrize("kind", sorted(LOSSLESS))
def test_lossless_formats_decode_exactly(kind: str) -> None:
    gray = pattern()
    decoded = decode_image(LOSSLESS[kind](gray))
    assert decoded.dtype == np.float32
    # v / 255 as float32, exactly (16-bit: v * 257 / 65535, the same number).
    np.testing.assert_array_equal(decoded, to_float(gray[None]).reshape(gray.shape))


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("JPEG", {"quality": 95}), ("WEBP", {"quality": 90})],
)
def test_lossy_formats_decode_closely(fmt: str, options: dict[str, object]) -> None:
    gray = np.repeat(np.repeat(pattern(6, 8), 8, axis=0), 8, axis=1)
    decoded = decode_image(encode(Image.fromarray(gray).convert("RGB"), fmt, **options))
    assert decoded.shape == gray.shape
    assert np.abs(decoded - gray / 255.0).mean() < 0.03


def test_bilevel_png() -> None:
    bits = pattern() > 127
    decoded = decode_image(encode(Image.fromarray(bits)))
    np.testing.assert_array_equal(decoded, bits.astype(np.float32))


def test_colour_is_reduced_to_luma() -> None:
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[..., 0] = 255  # pure red
    decoded = decode_image(encode(Image.fromarray(rgb)))
    np.testing.assert_allclose(decoded, 0.299, atol=1e-6)


def test_gif_uses_the_first_frame() -> None:
    first = Image.fromarray(pattern())
    second = Image.new("L", first.size, 255)
    data = encode(first, "GIF", save_all=True, append_images=[second])
    with Image.open(io.BytesIO(data)) as image:
        assert getattr(image, "n_frames", 1) == 2
    np.testing.assert_array_equal(
        decode_image(data), to_float(pattern()[None])[0].reshape(24, 32)
    )


def test_exif_orientation_is_applied() -> None:
    image = Image.new("L", (40, 20), 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    decoded = decode_image(encode(image, "JPEG", exif=exif))
    assert decoded.shape == (40, 20)


# --------------------------------------------------------------------------
# Decoding: refusals
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(encode(Image.fromarray(pattern()), "TIFF"), id="tiff"),
        pytest.param(encode(Image.new("RGB", (32, 32)), "ICO"), id="ico"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", id="pdf"),
        pytest.param(b'<?xml version="1.0"?>\n<svg xmlns="x"></svg>', id="svg"),
        pytest.param(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", id="heic"),
        pytest.param(b"P5\n28 28\n255\n" + bytes(784), id="pgm"),
    ],
)
def test_recognised_but_unaccepted_formats_are_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedImageError, match="not accepted"):
        decode_image(data)


PNG = encode(Image.fromarray(pattern(64, 64)))
JPEG = encode(Image.fromarray(pattern(64, 64)), "JPEG")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(PNG[: len(PNG) // 2], id="truncated-png"),
        pytest.param(JPEG[: len(JPEG) // 2], id="truncated-jpeg"),
        pytest.param(PNG[:40], id="png-header-only"),
        pytest.param(np.random.default_rng(0).bytes(4096), id="junk"),
        pytest.param(
            PNG[:8] + np.random.default_rng(1).bytes(200), id="png-magic-junk"
        ),
        pytest.param(b"GIF89a" + bytes(100), id="gif-magic-junk"),
        pytest.param(b"hello, world", id="text"),
    ],
)
def test_undecodable_bytes_raise_decode_error(data: bytes) -> None:
    with pytest.raises(ImageDecodeError):
        decode_image(data)


def test_byte_limit() -> None:
    with pytest.raises(LimitExceededError, match="byte limit"):
        decode_image(PNG, ImageLimits(max_bytes=len(PNG) - 1))
    assert decode_image(PNG, ImageLimits(max_bytes=len(PNG))).shape == (64, 64)


@pytest.mark.parametrize(
    ("width", "height", "limits"),
    [
        pytest.param(100_000, 100_000, ImageLimits(), id="10G-pixels"),
        pytest.param(5_000, 5_000, ImageLimits(), id="25M-over-16M-default"),
        # Between Pillow's MAX_IMAGE_PIXELS and twice that, Pillow only warns:
        # the warning must become a refusal even when our own limit is higher.
        pytest.param(
            10_000, 10_000, ImageLimits(max_pixels=10**10), id="pillow-warning"
        ),
        pytest.param(28, 28, ImageLimits(max_pixels=783), id="custom-limit"),
    ],
)
def test_pixel_limit_from_the_header(
    width: int, height: int, limits: ImageLimits
) -> None:
    data = png_header_only(width, height)
    assert len(data) < 200
    max_pixels, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    start = time.perf_counter()
    with pytest.raises(LimitExceededError):
        decode_image(data, limits)
    assert time.perf_counter() - start < 1.0  # refused from the header, never decoded
    assert Image.MAX_IMAGE_PIXELS == max_pixels
    assert warnings.filters == filters


def test_image_limits() -> None:
    assert ImageLimits() == ImageLimits(
        max_pixels=16_000_000, max_bytes=8 * 1024 * 1024
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        ImageLimits().max_pixels = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="positive"):
        ImageLimits(max_pixels=0)


# --------------------------------------------------------------------------
# Alpha
# --------------------------------------------------------------------------


def canvas_export(ink: NDArray[np.float32], colour: tuple[int, int, int]) -> bytes:
    """Strokes of ``colour`` over a transparent canvas storing (0, 0, 0, 0)."""
    alpha = np.rint(ink * 255).astype(np.uint8)
    rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)
    rgba[alpha > 0, :3] = colour
    rgba[..., 3] = alpha
    return encode(Image.fromarray(rgba))


def test_transparent_canvas_with_dark_strokes_keeps_its_ink() -> None:
    ink = seven()
    decoded = decode_image(canvas_export(ink, (0, 0, 0)))
    # Dropping alpha would give black on black; compositing gives white paper.
    np.testing.assert_allclose(decoded, 1.0 - np.rint(ink * 255) / 255, atol=1e-6)
    drawn = to_mnist(decoded, "mnist")
    opaque = image_to_input(gray_png(1.0 - ink), "mnist")
    np.testing.assert_allclose(drawn, opaque, atol=0.01)
    assert drawn.max() == 1.0


def test_transparent_canvas_with_light_strokes_goes_on_black() -> None:
    ink = seven()
    decoded = decode_image(canvas_export(ink, (255, 255, 255)))
    np.testing.assert_allclose(decoded, np.rint(ink * 255) / 255, atol=1e-6)


def test_coloured_strokes_on_a_transparent_canvas() -> None:
    ink = seven()
    drawn = image_to_input(canvas_export(ink, (20, 40, 140)), "mnist")
    np.testing.assert_allclose(
        drawn, image_to_input(gray_png(1.0 - ink), "mnist"), atol=0.05
    )


def test_transparent_holes_in_a_picture_are_filled_with_its_paper() -> None:
    paper = np.full((60, 60), 0.8, dtype=np.float32) - 0.7 * seven(
        (60, 60), (10, 10, 50, 50), 4
    )
    gray = np.rint(paper * 255).astype(np.uint8)
    alpha = np.full_like(gray, 255)
    alpha[:12, :12] = 0  # a transparent corner over black RGB
    rgba = np.stack([gray, gray, gray, alpha], axis=-1)
    rgba[:12, :12, :3] = 0
    decoded = decode_image(encode(Image.fromarray(rgba)))
    np.testing.assert_allclose(decoded[:12, :12], 0.8, atol=0.01)


def test_palette_transparency_and_la() -> None:
    ink = seven()
    expected = image_to_input(gray_png(1.0 - ink), "mnist")
    indices = (ink > 0.5).astype(np.uint8)  # 0 = background, 1 = stroke
    palette = Image.fromarray(indices, "L").convert("P")
    palette.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)
    palette.putdata(indices.ravel().tolist())
    from_p = image_to_input(encode(palette, transparency=0), "mnist")
    la = np.stack(
        [np.zeros_like(indices), np.rint(ink * 255).astype(np.uint8)], axis=-1
    )
    from_la = image_to_input(encode(Image.fromarray(la, "LA")), "mnist")
    np.testing.assert_allclose(from_la, expected, atol=0.01)
    assert np.abs(from_p - expected).mean() < 0.02  # aliased edges differ a little


def test_fully_transparent_image_is_empty() -> None:
    data = encode(Image.new("RGBA", (50, 50), (0, 0, 0, 0)))
    with pytest.raises(EmptyImageError):
        image_to_input(data)


# --------------------------------------------------------------------------
# Polarity, background, empty images
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paper", "pen"),
    [(1.0, 0.0), (0.0, 1.0), (0.7, 0.3), (0.35, 0.8), (0.55, 0.45)],
    ids=["black-on-white", "white-on-black", "grey-paper", "light-on-dark", "faint"],
)
def test_polarity_is_read_from_the_image(paper: float, pen: float) -> None:
    ink = seven()
    reference = normalize_mnist(ink)
    out = normalize_mnist(paper + (pen - paper) * ink)
    np.testing.assert_allclose(out, reference, atol=0.02)
    assert out.reshape(28, 28)[[0, 0, -1, -1], [0, -1, 0, -1]].max() == 0.0


def test_noisy_uneven_photo_background_comes_out_clean() -> None:
    rng = np.random.default_rng(0)
    ink = seven((400, 300), (150, 60, 230, 220), 14)
    rows = np.linspace(-1, 1, 300, dtype=np.float32)[:, None]
    cols = np.linspace(-1, 1, 400, dtype=np.float32)[None, :]
    light = 1.0 + 0.15 * cols - 0.1 * rows - 0.1 * (rows**2 + cols**2)
    photo = light * (0.7 - 0.5 * ink) + rng.normal(0, 0.03, ink.shape).astype(
        np.float32
    )
    data = encode(
        Image.fromarray(np.rint(np.clip(photo, 0, 1) * 255).astype(np.uint8)), "JPEG"
    )
    out = image_to_input(data).reshape(28, 28)
    clean = normalize_mnist(ink)
    assert np.abs(out - clean).mean() < 0.03
    # The paper is black: nothing lit far from the strokes.
    assert out[clean.reshape(28, 28) == 0].max() < 0.3
    assert (out > 0.05).sum() <= (clean > 0.05).sum() * 1.3


def test_faint_digit_in_a_big_noisy_photo_is_found() -> None:
    # Correlated JPEG noise all over a large frame must not be taken for ink.
    rng = np.random.default_rng(1)
    ink = seven((800, 600), (500, 100, 560, 200), 6)
    rows = np.linspace(-1, 1, 600, dtype=np.float32)[:, None]
    cols = np.linspace(-1, 1, 800, dtype=np.float32)[None, :]
    light = 1.0 + 0.3 * (0.6 * cols + 0.8 * rows)
    photo = light * (0.65 - 0.15 * ink) + rng.normal(0, 0.03, ink.shape).astype(
        np.float32
    )
    pixels = np.rint(np.clip(photo, 0, 1) * 255).astype(np.uint8)
    out = image_to_input(encode(Image.fromarray(pixels), "JPEG", quality=75))
    assert np.abs(out - normalize_mnist(ink).ravel()).mean() < 0.05


@pytest.mark.parametrize("size", [1, 28, 100])
@pytest.mark.parametrize("level", [0, 128, 255])
@pytest.mark.parametrize("mode", ["auto", "mnist"])
def test_uniform_image_is_empty(size: int, level: int, mode: str) -> None:
    data = encode(Image.new("L", (size, size), level))
    with pytest.raises(EmptyImageError, match="no digit"):
        image_to_input(data, mode)


def test_uniform_28x28_is_fine_in_raw_mode() -> None:
    out = image_to_input(encode(Image.new("L", (28, 28), 255)), "raw")
    np.testing.assert_array_equal(out, np.ones(784, dtype=np.float32))


def test_noise_alone_is_empty() -> None:
    rng = np.random.default_rng(0)
    noise = np.clip(0.7 + rng.normal(0, 0.02, (200, 200)), 0, 1).astype(np.float32)
    with pytest.raises(EmptyImageError):
        to_mnist(noise, "mnist")


def test_a_speck_of_dust_does_not_move_the_digit() -> None:
    ink = seven((400, 300), (150, 60, 230, 220), 14)
    dusty = ink.copy()
    dusty[10:13, 10:13] = 1.0  # 40 pixels above and left of the digit
    np.testing.assert_allclose(normalize_mnist(dusty), normalize_mnist(ink), atol=1e-6)


# --------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------


def test_unknown_mode() -> None:
    with pytest.raises(InputError, match="auto, mnist, raw"):
        to_mnist(np.zeros((28, 28), np.float32), "fancy")
    with pytest.raises(InputError, match="auto, mnist, raw"):
        image_to_input(PNG, "fancy")


def test_raw_needs_28x28() -> None:
    with pytest.raises(InputError, match="28x28"):
        image_to_input(encode(Image.fromarray(pattern(100, 100))), "raw")


def test_raw_only_converts_and_scales() -> None:
    gray = 255 - pattern(28, 28)  # light background: raw must not invert it
    out = image_to_input(encode(Image.fromarray(np.stack([gray] * 3, axis=-1))), "raw")
    np.testing.assert_array_equal(out, to_float(gray[None])[0])


@pytest.mark.parametrize(
    "gray",
    [
        np.zeros((2, 28, 28)),
        np.zeros(784),
        np.zeros((0, 5)),
        np.full((28, 28), np.nan),
        np.full((28, 28), 2.0),
    ],
    ids=["3-D", "1-D", "empty", "nan", "out-of-range"],
)
def test_to_mnist_checks_its_input(gray: NDArray[np.float64]) -> None:
    with pytest.raises(InputError):
        to_mnist(gray)


def test_auto_normalises_a_light_28x28() -> None:
    ink = seven((28, 28), (6, 4, 22, 24), 3)
    assert not is_mnist_like(1.0 - ink)
    # Dark background, but its mass sits high and right of (14, 14).
    assert not is_mnist_like(ink)
    assert is_mnist_like(normalize_mnist(ink))
    out = image_to_input(gray_png(1.0 - ink))  # auto
    np.testing.assert_array_equal(out, image_to_input(gray_png(1.0 - ink), "mnist"))
    assert out.reshape(28, 28)[0].max() == 0.0  # white ink on black


def test_auto_passes_real_mnist_images_through_exactly(
    mnist_test: tuple[NDArray[np.uint8], NDArray[np.uint8]],
) -> None:
    images = mnist_test[0][:1000]
    expected = to_float(images)
    for mode in ("auto", "raw"):
        got = np.stack(
            [image_to_input(encode(Image.fromarray(im)), mode) for im in images]
        )
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)


# --------------------------------------------------------------------------
# Fitting and centring
# --------------------------------------------------------------------------


def test_fit_20x20_and_centre_of_mass_at_mnist_centre() -> None:
    # A small "7" in the top-left corner of a wide canvas.
    ink = seven((400, 200), (20, 15, 70, 95), 8)
    out = image_to_input(gray_png(1.0 - ink)).reshape(28, 28)
    rows, cols = centre_of_mass(out)
    assert abs(rows - MNIST_CENTRE) < 0.1
    assert abs(cols - MNIST_CENTRE) < 0.1
    top, bottom, left, right = bbox(out, 0.3)
    assert bottom - top in (20, 21)  # the longer side fills the 20-pixel box
    assert right - left < bottom - top  # aspect ratio kept, not stretched
    # MNIST centres the mass, not the box: this 7's box is off-centre.
    assert abs((left + right - 1) / 2 - MNIST_CENTRE) > 0.5


def test_tall_stroke_keeps_its_aspect_ratio() -> None:
    gray = np.ones((200, 200), dtype=np.float32)
    gray[20:180, 95:105] = 0.0  # a "1": 160 tall, 10 wide
    out = image_to_input(gray_png(gray)).reshape(28, 28)
    top, bottom, left, right = bbox(out, 0.3)
    assert bottom - top in (20, 21)
    assert right - left <= 4


def test_same_drawing_at_any_scale() -> None:
    small = seven((100, 120), (20, 10, 60, 100), 7)
    big = seven((400, 480), (80, 40, 240, 400), 28)
    np.testing.assert_allclose(normalize_mnist(big), normalize_mnist(small), atol=0.25)
    assert np.abs(normalize_mnist(big) - normalize_mnist(small)).mean() < 0.02


def test_mnist_mode_centres_real_digits(
    mnist_test: tuple[NDArray[np.uint8], NDArray[np.uint8]],
) -> None:
    # MNIST itself was shifted by whole pixels: centres within +-0.5 of 14.
    for image in mnist_test[0][:100]:
        out = to_mnist(image / np.float32(255.0), "mnist").reshape(28, 28)
        rows, cols = centre_of_mass(out)
        assert abs(rows - MNIST_CENTRE) < 0.1
        assert abs(cols - MNIST_CENTRE) < 0.1
        # The 20-pixel box is placed at a sub-pixel offset: its edge pixels
        # are partly covered, so count pixels at least 30% lit (thin strokes,
        # thickened to MNIST's median width, can add one more).
        top, bottom, left, right = bbox(out, 0.3)
        assert 19 <= max(bottom - top, right - left) <= 22


# --------------------------------------------------------------------------
# Fidelity on real digits, by family of user-style variants
# --------------------------------------------------------------------------

FAMILIES = {
    "mnist-crops": ["png28_gray", "png28_inverted_rgb"],
    "scans-and-formats": [
        "scan_rgb_280",
        "jpeg_scan",
        "png16_gray",
        "palette_png",
        "bmp_small",
        "gif_first_frame",
        "webp_lossy",
    ],
    "canvas-exports": ["canvas_rgba", "canvas_rgba_light", "white_on_black"],
    "off-centre-wide": ["offcentre_wide"],
    "phone-photos": ["photo_jpeg"],
    "thick-strokes": ["thick_strokes"],
    "thin-strokes": ["thin_strokes"],
}
FIDELITY_IMAGES = 200


def test_families_cover_every_variant() -> None:
    from bench.image_variants import VARIANTS

    covered = [name for names in FAMILIES.values() for name in names]
    assert sorted(covered) == sorted(VARIANTS)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_variant_family_within_3_points_of_raw(
    family: str, mnist_test: tuple[NDArray[np.uint8], NDArray[np.uint8]]
) -> None:
    from bench.image_fidelity import predict_in_process, variant_rng
    from bench.image_variants import VARIANTS
    from core.weights import load_network

    network = load_network(require(BOOK_WEIGHTS))
    images, labels = (a[:FIDELITY_IMAGES] for a in mnist_test)
    raw_correct = network.predict(to_float(images)) == labels
    correct = np.zeros(len(images), dtype=bool)
    names = FAMILIES[family]
    # Image i is rendered by the family's (i mod k)-th variant.
    for k, name in enumerate(names):
        rng = variant_rng(name, 0)
        subset = np.arange(k, len(images), len(names))
        bodies = [VARIANTS[name](images[i], rng) for i in subset]
        correct[subset] = predict_in_process(network, bodies) == labels[subset]
    delta = 100.0 * (correct.mean() - raw_correct.mean())
    assert delta >= -3.0, (
        f"{family}: {correct.mean():.3f} vs raw {raw_correct.mean():.3f}"
    )
