"""Helpers shared by the benchmark modules: timing, tables, paths, load."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(
    os.environ.get("MNIST_SERVE_DATA", PROJECT_ROOT.parent / "shared" / "data")
)
BOOK_WEIGHTS = DATA_DIR / "book" / "sample_weight.pkl"
PROJECT_WEIGHTS = PROJECT_ROOT / "weights" / "mnist" / "1" / "weights.pkl"


def default_weights() -> Path:
    """The book's weights when the reference data is here, else the project's."""
    return BOOK_WEIGHTS if BOOK_WEIGHTS.exists() else PROJECT_WEIGHTS


def sample_images(n: int, seed: int = 0) -> np.ndarray:
    """``n`` images as float32 ``(n, 784)`` in [0, 1]: MNIST test digits if present."""
    mnist = DATA_DIR / "mnist"
    if (mnist / "t10k-images-idx3-ubyte.gz").exists():
        from core.mnist import read_images

        raw = read_images(mnist / "t10k-images-idx3-ubyte.gz").reshape(-1, 784)
        raw = np.resize(raw, (n, 784)) if n > len(raw) else raw[:n]
        return (raw.astype(np.float32) / np.float32(255.0)).copy()
    rng = np.random.default_rng(seed)
    return rng.random((n, 784), dtype=np.float32)


def sample_pixels(n: int) -> np.ndarray:
    """``n`` images as uint8 ``(n, 784)``."""
    return np.round(sample_images(n) * 255).astype(np.uint8)


def load_info() -> dict[str, Any]:
    """The machine's load when a run starts: the numbers are noisy under load."""
    one, five, fifteen = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "loadavg_1m": round(one, 2),
        "loadavg_5m": round(five, 2),
        "loadavg_15m": round(fifteen, 2),
    }


def time_per_call(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call of ``fn`` over ``calls`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def calls_for(fn: Callable[[], object], target: float) -> int:
    """How many calls of ``fn`` take about ``target`` seconds (at least 1)."""
    fn()
    once = time_per_call(fn, 3)
    return max(1, min(1_000_000, int(target / max(once, 1e-9))))


def interleaved(
    fns: dict[str, Callable[[], object]], rounds: int, target: float
) -> dict[str, float]:
    """Median seconds per call of each function, measured in alternating rounds.

    Every round times each function once (about ``target`` seconds of calls),
    so a burst of load from elsewhere hits all of them alike.
    """
    counts = {name: calls_for(fn, target) for name, fn in fns.items()}
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(time_per_call(fn, counts[name]))
    return {name: statistics.median(values) for name, values in samples.items()}


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A Markdown table of ``rows`` with ``(key, header)`` columns."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            if abs(value) >= 100:
                return f"{value:,.0f}"
            if abs(value) >= 10:
                return f"{value:.1f}"
            return f"{value:.2f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    body = [[cell(row.get(key)) for key, _ in columns] for row in rows]
    heads = [head for _, head in columns]
    widths = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(heads)]
    lines = [
        "| "
        + " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))
        + " |",
        "| " + " | ".join("-" * w for w in widths) + " |",
    ]
    lines += [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in body
    ]
    return "\n".join(lines)


def target_row(name: str, value: float, op: str, goal: float) -> dict[str, Any]:
    """One line of a targets table: a measured ratio against its goal."""
    met = value >= goal if op == ">=" else value <= goal
    return {"target": name, "ratio": value, "goal": f"{op} {goal:g}", "met": met}


def targets_table(rows: Sequence[dict[str, Any]], title: str) -> str:
    """The targets of an area, as :func:`target_row` makes them."""
    return table(
        rows,
        [("target", title), ("ratio", "ratio"), ("goal", "goal"), ("met", "met")],
    )


def finish(
    result: dict[str, Any], problems: list[str], rendered: str, out: Path
) -> int:
    """Print a run's table and verdict, write its JSON; the exit status (1: failed)."""
    result["verdict"] = problems or "pass"
    print(rendered)
    print("verdict:", "; ".join(problems) if problems else "pass")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 1 if problems else 0


def key_values(rows: Sequence[tuple[str, str]]) -> str:
    """Two aligned columns: a name and its figure, a line each."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
