"""``python -m bench``: every benchmark, a table each, and one JSON file.

    python -m bench                 # the full run (a few minutes on 2 cores)
    python -m bench --quick         # seconds: smaller inputs, shorter loads
    python -m bench core http       # only some areas: core, http, scaling, startup
    python -m bench startup --image mnist-serve:test   # start-up, also in containers
    python -m bench --out results.json
    python -m bench http --compare before.json   # each row's ratio to an earlier run

The JSON holds every row, the ratios against the baselines measured in the
same run, the machine's load at the start and end (and, for HTTP, at each
row), and the versions involved.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import compare, core, http, loadgen, startup
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
        help="seconds of load per HTTP round (default 2, quick 1)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help="http: rounds per row, the median reported (default 3, quick 1)",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="FILE",
        help="a previous run's JSON: print each row's ratio to it",
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
    seconds = args.seconds or (1.0 if quick else 2.0)
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
            "http": {
                "seconds": seconds,
                "warmup": 0.2,
                "workers": (1,),
                "repeats": args.repeats or 1,
            },
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
        "http": {
            "seconds": seconds,
            "warmup": 0.5,
            "workers": (1, 2),
            "repeats": args.repeats or 3,
        },
        "scaling": {
            "seconds": seconds,
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


# Each area: its heading, how it runs, how its table is drawn.
RUNS: dict[str, tuple[str, Callable[..., dict[str, Any]], Callable[[Any], str]]] = {
    "core": ("Core forward pass (images/s; µs per call)", core.run, core.render),
    "http": (
        "HTTP and gRPC: mnist-serve vs the floor (bare FastAPI + Pydantic) and "
        "MLServer",
        http.run,
        http.render,
    ),
    "scaling": (
        "Scaling: octet-stream images/s by batch size and workers",
        http.scaling,
        http.render_scaling,
    ),
    "startup": (
        "Start-up, memory, and stopping under load",
        startup.run,
        startup.render,
    ),
}


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
    before = json.loads(args.compare.read_text()) if args.compare else None
    params = settings(args.quick, args)
    weights = args.weights or default_weights()
    generators = {"http": loadgen.http_generator(), "grpc": loadgen.grpc_generator()}
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "quick": args.quick,
        "machine": {**load_info(), "platform": platform.platform()},
        "versions": versions(),
        "weights": str(weights),
        "load_generator": generators,
    }
    print(f"# mnist-serve benchmarks ({'quick' if args.quick else 'full'} run)")
    print(f"machine: {result['machine']}")
    print(
        f"load: {generators['http']} (HTTP), {generators['grpc']} (gRPC), "
        f"{http.CONNECTIONS} connections\n"
    )
    start = time.perf_counter()
    for area in AREAS:
        if area not in areas:
            continue
        heading, run, render = RUNS[area]
        result[area] = run(weights=weights, **params[area])
        print(f"## {heading}\n")
        print(render(result[area]))
        print(f"\nload average now: {load_info()['loadavg_1m']}\n", flush=True)
    result["machine"]["loadavg_end"] = load_info()["loadavg_1m"]
    result["seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"{result['seconds']} s; JSON written to {args.out}")
    if before is not None:
        print(f"\n## Compared with {args.compare}\n")
        print(compare.render(compare.compare(result, before), result, before))
    for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client")):
        if not shutil.which(tool) and {"http", "scaling"} & set(areas):
            print(
                f"note: {tool} is not installed (apt-get install {package}): its rows "
                "used an asyncio client, which is slower than the servers",
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
