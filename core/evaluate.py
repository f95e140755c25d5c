"""Accuracy of a weights file on an MNIST split: ``python -m core.evaluate``.

Prints the accuracy (and correct/total), a per-class table and the confusion
matrix. With the book's ``sample_weight.pkl`` on the test set it prints
0.9352 (9352/10000) for any batch size.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core.errors import CoreError, InputError
from core.mnist import load_mnist, to_float
from core.network import HIDDEN_ACTIVATIONS, NUM_CLASSES, Network
from core.weights import load_network


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Result of :func:`evaluate`.

    Attributes
    ----------
    correct : int
    total : int
    confusion : ndarray of shape (10, 10), int64
        ``confusion[true, predicted]`` counts.
    """

    correct: int
    total: int
    confusion: NDArray[np.int64]

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def evaluate(
    network: Network,
    images: NDArray[np.uint8],
    labels: NDArray[np.uint8],
    batch_size: int = 100,
) -> Evaluation:
    """Classify ``images`` in batches and compare with ``labels``.

    Parameters
    ----------
    network : Network
    images : ndarray of shape (n, 28, 28), uint8
    labels : ndarray of shape (n,), uint8
    batch_size : int
        Rows per forward call; the result does not depend on it.

    Returns
    -------
    Evaluation

    Raises
    ------
    InputError
        ``batch_size`` below 1.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    predicted = np.concatenate(
        [
            network.predict(to_float(images[start : start + batch_size]))
            for start in range(0, images.shape[0], batch_size)
        ]
        or [np.empty(0, dtype=np.intp)]
    )
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (labels.astype(np.intp), predicted), 1)
    return Evaluation(
        correct=int(np.trace(confusion)),
        total=int(labels.shape[0]),
        confusion=confusion,
    )


def format_report(result: Evaluation) -> str:
    """The accuracy line, a per-class table and the confusion matrix, as text."""
    lines = [
        f"accuracy {result.accuracy:.4f} ({result.correct}/{result.total})",
        "",
        "class  images  correct  accuracy",
    ]
    for digit in range(NUM_CLASSES):
        total = int(result.confusion[digit].sum())
        hit = int(result.confusion[digit, digit])
        rate = f"{hit / total:.4f}" if total else "-"
        lines.append(f"{digit:>5}  {total:>6}  {hit:>7}  {rate:>8}")
    lines += ["", "confusion matrix (rows: true label, columns: predicted)"]
    lines.append("     " + "".join(f"{d:>6}" for d in range(NUM_CLASSES)))
    for digit in range(NUM_CLASSES):
        lines.append(
            f"{digit:>5}" + "".join(f"{n:>6}" for n in result.confusion[digit])
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; 0 on success, 1 on a bad weights or data file."""
    parser = argparse.ArgumentParser(
        prog="python -m core.evaluate",
        description="Accuracy of a weights file on the MNIST test set.",
    )
    parser.add_argument("--weights", required=True, help="book-format .pkl or .npz")
    parser.add_argument(
        "--data",
        required=True,
        help="directory with t10k-images-idx3-ubyte[.gz] and labels",
    )
    parser.add_argument(
        "--batch-size", type=int, default=100, help="rows per forward call"
    )
    parser.add_argument(
        "--split", choices=("t10k", "train"), default="t10k", help="which MNIST split"
    )
    parser.add_argument(
        "--activation",
        choices=tuple(HIDDEN_ACTIVATIONS),
        default=None,
        help="hidden activation the weights were trained with; default: what the "
        "file records (a .pkl records none: sigmoid)",
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    try:
        network = load_network(args.weights, hidden_activation=args.activation)
        images, labels = load_mnist(args.data, args.split)
    except CoreError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(format_report(evaluate(network, images, labels, args.batch_size)))
    return 0


if __name__ == "__main__":
    # Like any Unix filter: `... | head` ends quietly, not with a traceback.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
