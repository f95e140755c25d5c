"""Containers of the built image, on 127.0.0.1 ports, for the container suite.

The suite runs when MNIST_SERVE_TEST_IMAGE names an image (build-and-test.sh
builds one and sets it) and skips otherwise. Every container started here
carries the label ``mnist-serve.test-run=<MNIST_SERVE_TEST_RUN>``, so that the
script can remove by id whatever a crashed test left behind, and is removed by
its own fixture first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bench.procs import status

IMAGE = os.environ.get("MNIST_SERVE_TEST_IMAGE", "")
RUN = os.environ.get("MNIST_SERVE_TEST_RUN") or uuid.uuid4().hex[:12]
LABEL = f"mnist-serve.test-run={RUN}"
PORT = 8000  # the image's MNIST_SERVE_PORT
GRPC_PORT = 8001  # the image's MNIST_SERVE_GRPC_PORT


def needs_image() -> pytest.MarkDecorator:
    """Every module of the suite: ``pytestmark = needs_image()`` at its top.

    Without an image the whole module skips, with one reason, before its
    tests are collected.
    """
    if not IMAGE:
        pytest.skip(
            "no image to test: set MNIST_SERVE_TEST_IMAGE "
            "(deploy/docker/build-and-test.sh builds one and sets it)",
            allow_module_level=True,
        )
    return pytest.mark.container


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    """Run the docker CLI; its stdout, stripped."""
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def inspect(ref: str) -> dict[str, Any]:
    data = json.loads(docker("inspect", ref))
    assert isinstance(data, list)
    return dict(data[0])


@dataclass
class Container:
    id: str
    url: str
    started: float  # time.monotonic() just before `docker run`
    grpc: str = ""  # host:port of the gRPC endpoint, when published
    ready_s: float | None = None
    removed: bool = field(default=False)

    def state(self) -> dict[str, Any]:
        return dict(inspect(self.id)["State"])

    def logs(self) -> str:
        done = subprocess.run(
            ["docker", "logs", self.id], capture_output=True, text=True, check=False
        )
        return done.stdout + done.stderr

    def exec(self, *command: str, check: bool = True) -> str:
        return docker("exec", self.id, *command, check=check)

    def wait_ready(self, timeout: float) -> float:
        """Seconds from `docker run` to the first 200 of /health/ready."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if status(f"{self.url}/health/ready", timeout=1) == 200:
                self.ready_s = time.monotonic() - self.started
                return self.ready_s
            state = self.state()
            if not state["Running"]:
                raise AssertionError(
                    f"container exited ({state['ExitCode']}):\n{self.logs()}"
                )
            time.sleep(0.02)
        raise AssertionError(f"not ready within {timeout} s:\n{self.logs()}")

    def remove(self) -> None:
        if not self.removed:
            docker("rm", "--force", "--volumes", self.id, check=False)
            self.removed = True


def run_container(
    *,
    env: dict[str, str] | None = None,
    port: int = PORT,
    options: tuple[str, ...] = (),
    command: tuple[str, ...] = (),
) -> Container:
    """`docker run` the image, read-only with a /tmp tmpfs; HTTP and gRPC
    published on 127.0.0.1."""
    args = ["run", "--detach", "--label", LABEL, "--read-only", "--tmpfs", "/tmp",
            "--publish", f"127.0.0.1::{port}", "--publish", f"127.0.0.1::{GRPC_PORT}",
            *options]  # fmt: skip
    for name, value in (env or {}).items():
        args += ["--env", f"{name}={value}"]
    started = time.monotonic()
    cid = docker(*args, IMAGE, *command)

    def published(port: int) -> str:
        return docker("port", cid, f"{port}/tcp").splitlines()[0].rsplit(":", 1)[1]

    return Container(
        cid,
        f"http://127.0.0.1:{published(port)}",
        started,
        grpc=f"127.0.0.1:{published(GRPC_PORT)}",
    )


def start_period(image: str = "") -> float:
    """The image's HEALTHCHECK start period, seconds."""
    health = inspect(image or IMAGE)["Config"]["Healthcheck"]
    return float(health["StartPeriod"]) / 1e9


@pytest.fixture(scope="session")
def container() -> Iterator[Container]:
    """One worker, the image's defaults: the functional tests share it."""
    c = run_container()
    try:
        c.wait_ready(start_period())
        yield c
    finally:
        c.remove()


@pytest.fixture
def fresh() -> Iterator[list[Container]]:
    """Containers a test starts itself; removed afterwards."""
    made: list[Container] = []
    try:
        yield made
    finally:
        for c in made:
            c.remove()


def compose_command() -> list[str] | None:
    """`docker compose` (v2) or Debian's `docker-compose` (1.29), if either exists."""
    given = os.environ.get("MNIST_SERVE_TEST_COMPOSE")
    if given:
        return given.split()
    if subprocess.run(["docker", "compose", "version"], capture_output=True,
                      check=False).returncode == 0:  # fmt: skip
        return ["docker", "compose"]
    exe = shutil.which("docker-compose")
    return [exe] if exe else None
