"""Every snippet in the README runs as pasted, against a real server.

- every ``curl`` line of a shell block, with its answer checked;
- every other shell command that runs a project tool (``python -m ...``);
- every Python block, as a script;
- the commands that change the machine or run for minutes (``make``, ``apt-get``,
  ``docker``, ``kubectl``, full training and benchmark runs) are listed in
  ``NOT_RUN_HERE`` with the test or CI step that runs them instead, so that a
  new snippet is either run here or accounted for.

The README's addresses ``127.0.0.1:8000`` (or ``localhost:8000``) and
``127.0.0.1:8001`` (gRPC) are rewritten to the test server's ports, and
``$MNIST_SERVE_ADMIN_TOKEN`` is the test server's token; nothing else changes.
The server runs the shipped repository in explicit model control, so that the
README's load and unload examples have something to do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.procs import free_port, launch, wait_ready
from tests.conftest import DATA_DIR, PROJECT_ROOT, require
from tests.e2e.conftest import Server, mnist_serve_command

pytestmark = pytest.mark.e2e

README = PROJECT_ROOT / "README.md"

# Commands (regular expressions matched at the start) that this test does not
# run, and what runs them instead.
NOT_RUN_HERE = {
    r"make ": ".ci/run runs `make serve` and `make test` on a fresh clone",
    r"bash \.ci/run": "CI itself",
    r"(sudo )?apt-get ": "installs system packages",
    r"(\.venv/bin/)?pip install": "make test installs the same packages",
    r"docker ": "the container suite (make docker-test) in CI",
    r"kubectl ": "needs a cluster; tests/test_deploy.py validates the manifests",
    r"hadolint ": "tests/test_deploy.py",
    r"\.venv/bin/mnist-serve": "starts a server; tests/e2e/test_server.py",
    r"OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \.venv/bin/python -m core\.train": "3.5 minutes; tests/core/test_train.py trains the same code briefly",
    r"\.venv/bin/python -m bench$": "minutes of load; tests/test_bench.py",
    r"\.venv/bin/python -m bench\.soak": "20 s of load; tests/e2e/test_soak.py",
    r"\.venv/bin/python -m bench\.image_fidelity": "minutes; tests/app/test_images_http.py runs the same renderings on fewer images",
    r"\.venv/bin/python -m bench\.image_(reference|tune)": "minutes; tests/core/test_images_hard.py runs the same renderings on fewer digits",
}


def _blocks(languages: str) -> list[str]:
    return re.findall(rf"```(?:{languages})\n(.*?)```", README.read_text(), re.S)


def _shell_commands() -> list[str]:
    """Every command line of the README's shell blocks, continuations joined.

    A block with ``$ `` prompts is a transcript: its other lines are output.
    """
    commands = []
    for block in _blocks("sh|bash"):
        lines = [line.strip() for line in block.replace("\\\n", " ").splitlines()]
        if any(line.startswith("$ ") for line in lines):
            continue
        commands += [line for line in lines if line and not line.startswith("#")]
    return commands


def readme_curl_commands() -> list[str]:
    return [c for c in _shell_commands() if c.startswith("curl ")]


def readme_tool_commands() -> list[str]:
    return [
        c
        for c in _shell_commands()
        if not c.startswith("curl ") and not _not_run_reason(c)
    ]


def _not_run_reason(command: str) -> str | None:
    # A trailing comment is not part of the command.
    bare = command.split(" #", 1)[0].strip()
    for pattern, reason in NOT_RUN_HERE.items():
        if re.match(pattern, bare):
            return reason
    return None


TOKEN = "readme-admin-token"
GRPC_PORT = free_port()


def _local(text: str, server: Server) -> str:
    port = server.url.rsplit(":", 1)[1]
    text = re.sub(r"(localhost|127\.0\.0\.1):8000", f"127.0.0.1:{port}", text)
    return text.replace("127.0.0.1:8001", f"127.0.0.1:{GRPC_PORT}")


def _env() -> dict[str, str]:
    # The README's commands use .venv/bin/...: run them with this interpreter's venv.
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "MNIST_SERVE_ADMIN_TOKEN": TOKEN,
    }


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    tmp = tmp_path_factory.mktemp("readme")
    port = free_port()
    command = [
        *mnist_serve_command(),
        "--port",
        str(port),
        "--grpc-port",
        str(GRPC_PORT),
    ]
    env = {"MNIST_SERVE_ADMIN_TOKEN": TOKEN, "MNIST_SERVE_MODEL_CONTROL": "explicit"}
    log = tmp / "server.log"
    process = launch(command, log, env)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    wait_ready(process, server.url, log, timeout=60)
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
        "/models",
        "/v2/repository/index",
        "/health/ready",
        "/v2/models/mnist/infer",
        "/explain",
        "/metrics",
    ):
        assert needle in text, needle


def test_every_readme_command_is_run_or_accounted_for() -> None:
    # Each class of snippet the README promises is really exercised.
    tools = "\n".join(readme_tool_commands())
    assert "-m core.evaluate" in tools
    assert "-m bench core --quick" in tools
    python = "\n".join(_blocks("python"))
    for needle in (
        "mnist_client",
        "tritonclient.http",
        "tritonclient.grpc",
        "from core import",
    ):
        assert needle in python, needle


@pytest.mark.parametrize("command", readme_curl_commands())
def test_readme_curl_command(readme_server: Server, command: str) -> None:
    result = subprocess.run(
        ["bash", "-c", _local(command, readme_server) + " -w '\\n%{http_code}'"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=_env(),
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


@pytest.mark.parametrize("command", readme_tool_commands())
def test_readme_tool_command(readme_server: Server, command: str) -> None:
    if "../shared/data" in command:
        require(DATA_DIR)
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", _local(command, readme_server)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    if "core.evaluate" in command and "book" in command:
        assert "accuracy 0.9352 (9352/10000)" in result.stdout


@pytest.mark.parametrize(
    "block", _blocks("python"), ids=lambda b: b.strip().splitlines()[0][:40]
)
def test_readme_python_block(readme_server: Server, block: str) -> None:
    if "../shared/data" in block:
        require(DATA_DIR)
    result = subprocess.run(
        [sys.executable, "-c", _local(block, readme_server)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
