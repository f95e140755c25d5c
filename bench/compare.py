"""``--compare FILE``: each row of this run against the same row of an earlier one.

Rows are matched by what names them (case, server, workers; implementation,
batch, threads; ...) and compared on their rate, so a regression shows as a
ratio below 1 in one command:

    python -m bench http --out before.json
    ... change something ...
    python -m bench http --compare before.json

Both runs' load averages are printed beside the ratios: a ratio measured
while the machine was busy says little.
"""

from __future__ import annotations

from typing import Any

from bench.common import table

# The figure compared in each area's rows; higher is better unless listed
# in LOWER_IS_BETTER.
METRICS = ("images_per_s", "req_per_s", "all_s", "ready_s", "seconds")
LOWER_IS_BETTER = {"all_s", "ready_s", "seconds"}
# The fields that name a row in any area (the rest are measurements).
NAMES = ("case", "impl", "where", "server", "import", "batch", "workers", "threads")
AREAS = ("core", "http", "scaling", "startup")


def _key(row: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """What names a row (the fields of NAMES it has), across versions of the bench."""
    return tuple((k, row[k]) for k in NAMES if k in row)


def _rows(result: dict[str, Any], area: str) -> list[dict[str, Any]]:
    section = result.get(area) or {}
    rows = section.get("rows", []) + section.get("imports", [])
    return [r for r in rows if isinstance(r, dict)]


def compare(now: dict[str, Any], before: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per row found in both runs: the figure then and now, and now/then."""
    out = []
    for area in AREAS:
        earlier = {_key(r): r for r in _rows(before, area)}
        for row in _rows(now, area):
            old = earlier.get(_key(row))
            metric = next((m for m in METRICS if m in row), None)
            if old is None or metric is None or not old.get(metric):
                continue
            ratio = row[metric] / old[metric]
            out.append(
                {
                    "area": area,
                    "row": ", ".join(str(v) for _, v in _key(row)),
                    "metric": metric,
                    "before": old[metric],
                    "now": row[metric],
                    "ratio": ratio,
                    # >= 1 is better, whichever way the figure goes
                    "better": 1 / ratio if metric in LOWER_IS_BETTER else ratio,
                }
            )
    return out


def render(
    entries: list[dict[str, Any]], now: dict[str, Any], before: dict[str, Any]
) -> str:
    def load(result: dict[str, Any]) -> str:
        machine = result.get("machine", {})
        return (
            f"{result.get('started', '?')}, load {machine.get('loadavg_1m', '?')} "
            f"at the start, {machine.get('loadavg_end', '?')} at the end"
        )

    head = f"now: {load(now)}\nbefore: {load(before)}\n"
    if not entries:
        return head + "\nno row of this run is in the earlier one"
    body = table(
        entries,
        [
            ("area", "area"),
            ("row", "row"),
            ("metric", "figure"),
            ("before", "before"),
            ("now", "now"),
            ("better", "x before (>1 better)"),
        ],
    )
    return f"{head}\n{body}"
