"""Core forward pass: the fast path vs the book's form vs the book's code vs onnxruntime.

Each row is images per second over the same images, and the time of one call,
for batch 1, 100 and 10,000 at a stated number of BLAS / intra-op threads:

* ``mnist-serve core``: ``Network.forward``, the fast path the service runs;
* ``core forward_reference``: ``Network.forward_reference``, the same network
  written as the book writes its forward pass (with core's stable sigmoid);
* ``book loop (ch03)``: the book's own chapter-3 code, as a peer;
* ``onnxruntime``: the same graph in onnxruntime, when installed.

The implementations are timed in alternating rounds within one run, and the
ratios are taken between rows of that run.

    python -m bench core [--quick]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bench import onnx_model
from bench.common import (
    default_weights,
    interleaved,
    sample_images,
    table,
    target_row,
    targets_table,
)
from core.weights import load_network

BATCHES = (1, 100, 10_000)
FAST = "mnist-serve core"
PLAIN = "core forward_reference"
BOOK = "book loop (ch03)"
ORT = "onnxruntime"


# The book's chapter-3 code (ch03/neuralnet_mnist_batch.py with
# common/functions.py), written out again as the baseline.
def book_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def book_softmax(x: np.ndarray) -> np.ndarray:
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def book_predict(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    w1, w2, w3 = params["W1"], params["W2"], params["W3"]
    b1, b2, b3 = params["b1"], params["b2"], params["b3"]
    a1 = np.dot(x, w1) + b1
    z1 = book_sigmoid(a1)
    a2 = np.dot(z1, w2) + b2
    z2 = book_sigmoid(a2)
    a3 = np.dot(z2, w3) + b3
    return book_softmax(a3)


def _loop(forward: Callable[[np.ndarray], object], x: np.ndarray, batch: int):
    if batch == 1:
        one = x[0]
        return lambda: forward(one)
    if batch >= len(x):
        return lambda: forward(x)

    def run() -> None:
        for i in range(0, len(x), batch):
            forward(x[i : i + batch])

    return run


def run(
    *,
    weights: Path | None = None,
    threads: tuple[int, ...] = (1, 2),
    images: int = 10_000,
    rounds: int = 7,
    target: float = 0.1,
    batches: tuple[int, ...] = BATCHES,
) -> dict[str, Any]:
    """Measure every implementation at every batch size and thread count."""
    path = weights or default_weights()
    network = load_network(path)
    params = {k: np.array(v) for k, v in network.params().items()}
    x = sample_images(images)
    # They must agree before their speed means anything.
    reference = book_predict(params, x[:100])
    np.testing.assert_allclose(network.forward(x[:100]), reference, atol=1e-5)
    np.testing.assert_allclose(network.forward_reference(x[:100]), reference, atol=1e-5)
    rows: list[dict[str, Any]] = []
    have_ort = onnx_model.available()
    for n_threads in threads:
        impls: dict[str, Callable[[np.ndarray], object]] = {
            FAST: network.forward,
            PLAIN: network.forward_reference,
            BOOK: lambda v: book_predict(params, v),
        }
        if have_ort:
            peer = onnx_model.OnnxPeer(network, n_threads)
            np.testing.assert_allclose(peer.forward(x[:100]), reference, atol=1e-5)
            impls[ORT] = peer.forward
        with threadpool_limits(limits=n_threads, user_api="blas"):
            for batch in batches:
                n = min(batch, len(x)) if batch > 1 else 1
                span = x if batch > 1 else x[:1]
                fns = {name: _loop(f, span, batch) for name, f in impls.items()}
                seconds = interleaved(fns, rounds, target)
                for name, per_pass in seconds.items():
                    count = len(span)
                    calls = 1 if batch >= count else -(-count // n)
                    rows.append(
                        {
                            "impl": name,
                            "batch": batch,
                            "threads": n_threads,
                            "images_per_s": count / per_pass,
                            "call_us": per_pass / calls * 1e6,
                        }
                    )
    return {
        "weights": str(path),
        "images": len(x),
        "onnxruntime": _ort_version() if have_ort else None,
        "numpy": np.__version__,
        "blas": _blas_info(),
        "rows": rows,
        "ratios": ratios(rows),
    }


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def _blas_info() -> str:
    from threadpoolctl import threadpool_info

    info = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    return ", ".join(
        f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')})"
        for p in info
    )


def _find(rows: list[dict[str, Any]], impl: str, batch: int, threads: int):
    for row in rows:
        if (row["impl"], row["batch"], row["threads"]) == (impl, batch, threads):
            return row
    return None


# The targets: (name, ours, batch, peer, peer's batch, measure, op, goal). For
# images/s the ratio is ours over the peer's; for a call's time, the reverse.
TARGETS = (
    ("batch 10,000 vs onnxruntime", FAST, 10_000, ORT, 10_000, "images_per_s", ">=", 1.0),
    ("batch 10,000 vs book batch-100 loop", FAST, 10_000, BOOK, 100, "images_per_s", ">=", 1.5),
    ("single-image latency / onnxruntime's", FAST, 1, ORT, 1, "call_us", "<=", 1.2),
    ("fast path vs forward_reference, batch 1", FAST, 1, PLAIN, 1, "images_per_s", ">=", 1.0),
    ("fast path vs forward_reference, batch 10,000", FAST, 10_000, PLAIN, 10_000, "images_per_s", ">=", 1.0),
)  # fmt: skip


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The targets, each a ratio of two rows measured in the same run."""
    out = []
    for t in sorted({r["threads"] for r in rows}):
        for name, ours, batch, peer, peer_batch, measure, op, goal in TARGETS:
            a, b = _find(rows, ours, batch, t), _find(rows, peer, peer_batch, t)
            if a and b:
                value = a[measure] / b[measure]
                out.append(target_row(f"{name} ({t} thr)", value, op, goal))
    return out


COLUMNS = [
    ("impl", "implementation"),
    ("batch", "batch"),
    ("threads", "threads"),
    ("images_per_s", "images/s"),
    ("call_us", "µs/call"),
]


def render(result: dict[str, Any]) -> str:
    rows = table(result["rows"], COLUMNS)
    goals = targets_table(result["ratios"], "core target")
    if result["onnxruntime"] is None:
        goals += (
            "\n\nonnxruntime is not installed (pip install '.[bench]'): the "
            "single-image and batch targets against it were not measured."
        )
    return f"{rows}\n\n{goals}"
