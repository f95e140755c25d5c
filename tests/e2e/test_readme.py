"""Every curl command in the README runs as written against a real server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import PROJECT_ROOT
from tests.e2e.conftest import Server, start_server

pytestmark = pytest.mark.e2e

README = PROJECT_ROOT / "README.md"


def readme_curl_commands() -> list[str]:
    """The curl commands of the README's shell blocks, continuation lines joined."""
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        text = block.replace("\\\n", " ")
        commands += [
            line.strip()
            for line in text.splitlines()
            if line.strip().startswith("curl ")
        ]
    return commands


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    server = start_server(
        PROJECT_ROOT / "weights" / "sample_weight.pkl",
        tmp_path_factory.mktemp("readme"),
    )
    yield server
    assert server.stop() == 0


def test_the_readme_has_curl_examples_for_every_form() -> None:
    text = "\n".join(readme_curl_commands())
    for needle in (
        "application/json",
        "octet-stream",
        "image/png",
        "-F file=@",
        "/activations",
        "/model",
        "/health/ready",
        "/v2/models/mnist/infer",
        "/explain",
        "/metrics",
    ):
        assert needle in text, needle


@pytest.mark.parametrize("command", readme_curl_commands())
def test_readme_curl_command(readme_server: Server, command: str) -> None:
    port = readme_server.url.rsplit(":", 1)[1]
    runnable = re.sub(r"(localhost|127\.0\.0\.1):8000", f"127.0.0.1:{port}", command)
    result = subprocess.run(
        ["bash", "-c", runnable + " -w '\\n%{http_code}'"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    if " -i " in command:  # the README's example of a bad input
        assert status == "422"
        assert "application/problem+json" in body
        return
    assert status == "200", body[:500]
    if "/predict" in command:
        # The examples are drawn digits: the shipped weights must read them right.
        answer = json.loads(body)
        files = re.findall(r"examples/(\w+)\.", command)
        expected = {
            "one": [1],
            "one_28x28": [1],
            "one_pixels": [1],
            "seven": [7],
            "batch": [1, 7],
        }
        want = [label for name in files for label in expected[name]]
        got = answer["labels"] if "labels" in answer else [answer["label"]]
        assert got == want, command
