"""``python -m bench``: every benchmark, a table each, and one JSON file.

    python -m bench                 # the full run (a few minutes on 2 cores)
    python -m bench --quick         # seconds: smaller inputs, shorter loads
    python -m bench core http       # only some areas: core, http, scaling, startup
    python -m bench startup --image mnist-serve:test   # start-up, also in containers
    python -m bench --out results.json

The JSON holds every row, the ratios against the baselines measured in the
same run, the machine's load at the start, and the versions involved.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench import core, http, startup
from bench.common import PROJECT_ROOT, default_weights, load_info

AREAS = ("core", "http", "scaling", "startup")
DEFAULT_OUT = PROJECT_ROOT / "bench" / "results" / "latest.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "areas",
        nargs="*",
        metavar="AREA",
        help=f"any of {', '.join(AREAS)} (default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs, for a smoke check"
    )
    parser.add_argument(
        "--weights", type=Path, help="weights file (default: the book's if present)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"JSON output (default {DEFAULT_OUT.relative_to(PROJECT_ROOT)})",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        help="seconds of load per HTTP row (default 3, quick 1)",
    )
    parser.add_argument(
        "--image",
        help="startup: also start containers of this image (needs Docker)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        help="core: thread counts (default 1 2, quick 1)",
    )
    return parser


def settings(quick: bool, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Run parameters per area: the full run, or the quick one."""
    seconds = args.seconds or (1.0 if quick else 3.0)
    threads = tuple(args.threads or ((1,) if quick else (1, 2)))
    if quick:
        return {
            "core": {
                "threads": threads,
                "images": 2_000,
                "rounds": 3,
                "target": 0.02,
                "batches": (1, 100, 2_000),
            },
            "http": {"seconds": seconds, "warmup": 0.2, "workers": (1,)},
            "scaling": {
                "seconds": seconds,
                "warmup": 0.2,
                "batches": (1, 64, 1024),
                "workers": (1,),
            },
            "startup": {"repeats": 1, "image": args.image},
        }
    return {
        "core": {"threads": threads, "images": 10_000, "rounds": 9, "target": 0.1},
        "http": {"seconds": seconds, "warmup": 1.0, "workers": (1, 2)},
        "scaling": {
            "seconds": max(1.0, seconds * 2 / 3),
            "warmup": 0.5,
            "workers": (1, 2),
        },
        "startup": {"repeats": 5, "image": args.image},
    }


def versions() -> dict[str, str]:
    import fastapi
    import numpy
    import orjson
    import pydantic
    import starlette
    import uvicorn

    out = {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "fastapi": fastapi.__version__,
        "starlette": starlette.__version__,
        "pydantic": pydantic.__version__,
        "uvicorn": uvicorn.__version__,
        "orjson": orjson.__version__,
    }
    for name in ("uvloop", "httptools", "onnxruntime"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = "absent"
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    areas = args.areas or list(AREAS)
    unknown = sorted(set(areas) - set(AREAS))
    if unknown:
        print(
            f"unknown area(s) {', '.join(unknown)}; choose from {', '.join(AREAS)}",
            file=sys.stderr,
        )
        return 2
    params = settings(args.quick, args)
    weights = args.weights or default_weights()
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "quick": args.quick,
        "machine": {**load_info(), "platform": platform.platform()},
        "versions": versions(),
        "weights": str(weights),
        "load_generator": http.generator(),
    }
    print(f"# mnist-serve benchmarks ({'quick' if args.quick else 'full'} run)")
    print(f"machine: {result['machine']}")
    print(f"HTTP load: {http.generator()}, {http.CONNECTIONS} connections\n")
    start = time.perf_counter()
    if "core" in areas:
        result["core"] = core.run(weights=weights, **params["core"])
        print("## Core forward pass (images/s; µs per call)\n")
        print(core.render(result["core"]) + "\n", flush=True)
    if "http" in areas:
        result["http"] = http.run(weights=weights, **params["http"])
        print("## HTTP /predict vs the floor (bare FastAPI + Pydantic)\n")
        print(http.render(result["http"]) + "\n", flush=True)
    if "scaling" in areas:
        result["scaling"] = http.scaling(weights=weights, **params["scaling"])
        print("## Scaling: octet-stream images/s by batch size and workers\n")
        print(http.render_scaling(result["scaling"]) + "\n", flush=True)
    if "startup" in areas:
        result["startup"] = startup.run(weights=weights, **params["startup"])
        print("## Start-up, memory, and stopping under load\n")
        print(startup.render(result["startup"]) + "\n", flush=True)
    result["machine"]["loadavg_end"] = load_info()["loadavg_1m"]
    result["seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"{result['seconds']} s; JSON written to {args.out}")
    if not shutil.which("wrk") and "http" in areas:
        print(
            "note: wrk is not installed (apt-get install wrk): HTTP rows used the "
            "asyncio client, which is slower than the servers",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # `... | head` closed standard output: end quietly, like a Unix filter.
        # (Not SIGPIPE's default action: the benchmarks' own sockets must keep
        # raising BrokenPipeError to the code that handles it.)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
