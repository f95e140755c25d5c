"""A short soak in CI: ``bench.soak`` for a few seconds with the asyncio generator.

Two workers on 127.0.0.1 take a mix of valid requests over 32 connections with
zero errors and no tracebacks, memory stays bounded, and a SIGTERM in the middle
of the load lets every request in flight finish before the server exits 0.
The full run (20 s, 64 connections, wrk) is ``python -m bench.soak``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import soak
from core.weights import save_network
from tests.conftest import random_network

pytestmark = pytest.mark.e2e


def test_mix_is_valid_and_varied() -> None:
    mix = soak.request_mix()
    assert len({r.name for r in mix}) == len(mix) >= 8
    kinds = {r.content_type.split(";")[0] for r in mix if r.content_type}
    assert {
        "application/json",
        "application/octet-stream",
        "image/png",
        "multipart/form-data",
    } <= kinds


def test_short_soak_then_sigterm_under_load(tmp_path: Path) -> None:
    weights = tmp_path / "weights.pkl"
    save_network(random_network(np.random.default_rng(0)), weights)
    result = soak.run(
        seconds=4,
        connections=32,
        workers=2,
        generator="asyncio",
        sigterm_after=1.5,
        weights=weights,
        log_dir=tmp_path,
    )
    report = soak.render(result)
    assert result["requests"] > 200, report
    assert result["errors"] == 0, report
    assert result["tracebacks_in_log"] == 0, (tmp_path / "soak.log").read_text()
    assert result["rss_peak_mib"] < 1024, report
    assert result["rss_growth_mib"] < 64, report
    shutdown = result["shutdown"]
    assert shutdown["errors_before_sigterm"] == 0, report
    assert shutdown["in_flight_at_sigterm"] > 0, report  # the SIGTERM hit real load
    assert shutdown["in_flight_failed"] == [], report
    assert shutdown["exit_code"] == 0, report
    assert shutdown["shutdown_s"] < 15, report  # graceful timeout 10 s + margin
    assert soak.verdict(result, 1024, 64) == []
