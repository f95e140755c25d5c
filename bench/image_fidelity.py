"""Fidelity of image uploads: accuracy on user-style renderings vs raw MNIST pixels.

Every MNIST test image is rendered as each kind of file people upload (see
:mod:`bench.image_variants`), sent through the image preprocessing, and
classified; the accuracy per variant is compared with the network's accuracy
on the same images' raw pixels. The target is every variant within 3 points.

Usage::

    python -m bench.image_fidelity [--n 1000] [--url http://127.0.0.1:8000]
        [--data DIR] [--weights PATH] [--json out.json] [--variants a,b]

Without ``--url`` everything runs in-process (``core.images.image_to_input``
and the network). With ``--url`` each rendered file is POSTed as a raw body
(``image/png``, ``image/jpeg``, ...) to ``URL/predict``, and the raw accuracy
comes from the same server (``application/octet-stream`` uint8 batches).
The exit status is 0 when every variant meets the target, 1 otherwise.
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

from bench.image_variants import VARIANTS
from core.errors import CoreError
from core.images import image_to_input
from core.mnist import load_mnist, to_float
from core.network import Network
from core.weights import load_network

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TARGET_POINTS = 3.0
RAW_BATCH = 100
CONTENT_TYPES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
    (b"RIFF", "image/webp"),
)


@dataclass(frozen=True, slots=True)
class VariantResult:
    """Accuracy of one variant next to the raw accuracy of the same images."""

    variant: str
    n: int
    correct: int
    accuracy: float
    raw_accuracy: float
    delta_points: float
    passed: bool
    errors: int
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


def variant_rng(name: str, seed: int) -> np.random.Generator:
    """A generator per variant, so any subset of variants renders identically."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def render(name: str, images: NDArray[np.uint8], seed: int) -> list[bytes]:
    """Encoded files of ``images`` (n, 28, 28) uint8 as variant ``name``."""
    rng = variant_rng(name, seed)
    return [VARIANTS[name](image, rng) for image in images]


def predict_in_process(network: Network, bodies: Sequence[bytes]) -> NDArray[np.intp]:
    """Labels through ``image_to_input`` + ``network``; -1 where it raised."""
    inputs = np.zeros((len(bodies), 784), dtype=np.float32)
    failed = np.zeros(len(bodies), dtype=bool)
    for i, body in enumerate(bodies):
        try:
            inputs[i] = image_to_input(body)
        except CoreError:
            failed[i] = True
    labels = network.predict(inputs)
    labels[failed] = -1
    return labels


def predict_http(client: Any, url: str, bodies: Sequence[bytes]) -> NDArray[np.intp]:
    """Labels from ``POST url/predict`` with each raw image body; -1 on errors."""
    labels = np.full(len(bodies), -1, dtype=np.intp)
    for i, body in enumerate(bodies):
        response = client.post(
            f"{url}/predict", content=body, headers={"content-type": content_type(body)}
        )
        if response.status_code == 200:
            labels[i] = int(response.json()["label"])
    return labels


def raw_labels_http(
    client: Any, url: str, images: NDArray[np.uint8]
) -> NDArray[np.intp]:
    """Labels of the raw pixels from the server.

    Sent as ``application/octet-stream`` uint8 batches; if the server refuses
    those, as one 28x28 grayscale PNG each with ``?preprocess=raw``.
    """
    labels = np.full(len(images), -1, dtype=np.intp)
    for start in range(0, len(images), RAW_BATCH):
        chunk = images[start : start + RAW_BATCH]
        response = client.post(
            f"{url}/predict",
            content=chunk.tobytes(),
            headers={"content-type": "application/octet-stream"},
        )
        if response.status_code != 200:
            break
        labels[start : start + len(chunk)] = response.json()["labels"]
    else:
        return labels
    for i, image in enumerate(images):
        response = client.post(
            f"{url}/predict",
            params={"preprocess": "raw"},
            content=VARIANTS["png28_gray"](image, np.random.default_rng(0)),
            headers={"content-type": "image/png"},
        )
        if response.status_code == 200:
            labels[i] = int(response.json()["label"])
    return labels


def score(
    name: str,
    predicted: NDArray[np.intp],
    raw_correct: NDArray[np.bool_],
    labels: NDArray[np.uint8],
    seconds: float,
) -> VariantResult:
    correct = predicted == labels
    accuracy = float(correct.mean())
    raw_accuracy = float(raw_correct.mean())
    delta = 100.0 * (accuracy - raw_accuracy)
    return VariantResult(
        variant=name,
        n=len(labels),
        correct=int(correct.sum()),
        accuracy=accuracy,
        raw_accuracy=raw_accuracy,
        delta_points=delta,
        passed=delta >= -TARGET_POINTS,
        errors=int((predicted < 0).sum()),
        seconds=seconds,
    )


def evaluate_in_process(
    network: Network,
    images: NDArray[np.uint8],
    labels: NDArray[np.uint8],
    variants: Sequence[str],
    seed: int = 0,
) -> list[VariantResult]:
    """Accuracy per variant through ``core.images`` in this process."""
    raw_correct = network.predict(to_float(images)) == labels
    results = []
    for name in variants:
        start = time.perf_counter()
        predicted = predict_in_process(network, render(name, images, seed))
        seconds = time.perf_counter() - start
        results.append(score(name, predicted, raw_correct, labels, seconds))
    return results


HEADER = (
    f"{'variant':<22} {'n':>6} {'accuracy':>9} {'raw':>9} {'delta':>7} "
    f"{'errors':>6}  target (-{TARGET_POINTS:g} pts)"
)


def format_row(result: VariantResult) -> str:
    verdict = "pass" if result.passed else "FAIL"
    return (
        f"{result.variant:<22} {result.n:>6} {result.accuracy:>9.4f} "
        f"{result.raw_accuracy:>9.4f} {result.delta_points:>+7.2f} "
        f"{result.errors:>6}  {verdict}"
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.image_fidelity",
        description="Accuracy of user-style image uploads vs raw MNIST pixels.",
    )
    parser.add_argument(
        "--n", type=int, default=1000, help="test images (default 1000)"
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
        default=PROJECT_ROOT / "bench" / "results" / "image_fidelity.json",
        help="where to write the results (default bench/results/image_fidelity.json)",
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
    names = args.variants.split(",") if args.variants else list(VARIANTS)
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        parser.error(
            f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}"
        )
    args.variant_names = names
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    data = args.data or default_data_dir()
    try:
        images, labels = load_mnist(mnist_dir(data), "t10k")
    except CoreError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    images, labels = images[: args.n], labels[: args.n]

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
        raw_correct = network.predict(to_float(images)) == labels

    print(
        f"{len(images)} MNIST test images, {source}; raw accuracy {raw_correct.mean():.4f}"
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
                name, predicted, raw_correct, labels, time.perf_counter() - start
            )
            results.append(result)
            print(format_row(result), flush=True)
    finally:
        if client is not None:
            client.close()

    passed = all(result.passed for result in results)
    worst = min(results, key=lambda result: result.delta_points)
    print(
        f"{'all variants within' if passed else 'NOT all variants within'} "
        f"{TARGET_POINTS:g} points of raw (worst: {worst.variant} "
        f"{worst.delta_points:+.2f})"
    )
    report = {
        "source": source,
        "weights": weights,
        "n": len(images),
        "seed": args.seed,
        "raw_accuracy": float(raw_correct.mean()),
        "target_points": TARGET_POINTS,
        "all_passed": passed,
        "variants": [asdict(result) for result in results],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
