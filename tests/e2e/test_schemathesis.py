"""schemathesis against the live OpenAPI schema of a real server on 127.0.0.1.

It generates valid and invalid requests for every operation (examples, coverage,
fuzzing and stateful phases) and checks that no answer is a 5xx and that every
status code, content type and body is the one the schema documents. A control
run against a route that raises proves the harness does fail on a 5xx.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from core.weights import save_network
from tests.conftest import random_network
from tests.e2e.conftest import Server, served_cleanly, start_app

pytestmark = pytest.mark.e2e

# Examples per operation: several hundred requests, done well within 60 s.
MAX_EXAMPLES = 10
SEED = 20240611
RUN_TIMEOUT = 150
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    weights = tmp / "weights.pkl"
    save_network(random_network(np.random.default_rng(0)), weights)
    with served_cleanly(weights, tmp, env={"MNIST_SERVE_MAX_BATCH_SIZE": "64"}) as s:
        yield s


def schemathesis(url: str, tmp_path: Path, *args: str) -> tuple[int, str, dict]:
    """Run the schemathesis CLI; its exit code, output and JSON report."""
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{url}/openapi.json",
            "--workers",
            "1",
            "--seed",
            str(SEED),
            "--request-timeout",
            "20",
            "--no-color",
            "--report",
            "json",
            "--report-json-path",
            str(report),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
    )
    output = result.stdout + result.stderr
    data = json.loads(report.read_text()) if report.exists() else {}
    return result.returncode, output, data


def _generated(output: str) -> int:
    match = re.search(r"(\d+) generated", output)
    return int(match.group(1)) if match else 0


def _string_documented_json(url: str) -> list[str]:
    """Operations whose JSON 200 answer is documented as a bare string."""
    schema = httpx.get(f"{url}/openapi.json", timeout=10).json()
    wrong = []
    for item in schema["paths"].values():
        for operation in item.values():
            content = operation.get("responses", {}).get("200", {}).get("content", {})
            if content.get("application/json", {}).get("schema") == {"type": "string"}:
                wrong.append(operation["operationId"])
    return sorted(wrong)


def test_no_server_error_and_documented_status_and_content_type(
    server: Server, tmp_path: Path
) -> None:
    start = time.monotonic()
    code, output, _ = schemathesis(
        server.url,
        tmp_path,
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing,stateful",
    )
    assert code == 0, output[-6000:]
    assert _generated(output) >= 300, output[-2000:]
    assert time.monotonic() - start < RUN_TIMEOUT


def test_response_bodies_match_their_schemas(server: Server, tmp_path: Path) -> None:
    # Operations documented as a bare string are caught by the test below.
    excluded = _string_documented_json(server.url)
    args = [a for op in excluded for a in ("--exclude-operation-id", op)]
    code, output, _ = schemathesis(
        server.url,
        tmp_path,
        "--checks",
        "response_schema_conformance",
        "--max-examples",
        "8",
        "--phases",
        "examples,coverage,fuzzing",
        *args,
    )
    assert code == 0, output[-6000:]
    assert _generated(output) >= 100, output[-2000:]


def test_every_json_answer_is_documented_by_its_model(server: Server) -> None:
    assert _string_documented_json(server.url) == []


def test_harness_fails_on_a_server_error(tmp_path: Path) -> None:
    # The same run against a service with one failing route must fail.
    weights = tmp_path / "weights.pkl"
    save_network(random_network(np.random.default_rng(0)), weights)
    boom = start_app(
        "tests.e2e.test_hostile:boom_app",
        tmp_path,
        {"MNIST_SERVE_WEIGHTS": str(weights)},
    )
    url, process = boom.url, boom.process
    try:
        code, output, _ = schemathesis(
            url,
            tmp_path,
            "--checks",
            CHECKS,
            "--max-examples",
            "3",
            "--include-path",
            "/boom",
        )
    finally:
        process.terminate()
        process.wait(20)
    assert code != 0
    assert "Server error" in output, output[-3000:]
