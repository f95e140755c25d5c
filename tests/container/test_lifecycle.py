"""The container's life: ready within the health check's start period with 1 and
2 workers (no worker killed), `healthy` on the port it was given, `docker stop`
with requests in flight answers them all and exits 0, and compose runs the
same image."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import httpx
import pytest
import yaml

from bench.procs import free_port
from tests.conftest import PROJECT_ROOT
from tests.container.conftest import (
    IMAGE,
    RUN,
    Container,
    compose_command,
    inspect,
    needs_image,
    run_container,
    start_period,
)
from tests.e2e.conftest import wait_in_flight

pytestmark = needs_image()

BODY = b'{"x": [' + b"0.5," * 783 + b"0.5]}"


def wait_for_log(c: Container, text: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if c.logs().count(text) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} x {text!r} not logged in {timeout} s:\n{c.logs()}")


@pytest.mark.parametrize("workers", [1, 2])
def test_ready_within_the_start_period_and_no_worker_killed(workers, fresh):
    c = run_container(env={"MNIST_SERVE_WORKERS": str(workers)})
    fresh.append(c)
    limit = start_period()
    ready = c.wait_ready(limit)
    # Every worker, not only the first to answer, has started in time.
    wait_for_log(c, "Application startup complete", workers, limit - ready)
    logs = c.logs()
    assert "died" not in logs, logs
    assert "Traceback" not in logs, logs


def test_healthy_on_the_port_it_was_given(fresh):
    c = run_container(
        env={"MNIST_SERVE_PORT": "9000", "MNIST_SERVE_WORKERS": "2"}, port=9000
    )
    fresh.append(c)
    health = inspect(IMAGE)["Config"]["Healthcheck"]
    interval, period = health["Interval"] / 1e9, health["StartPeriod"] / 1e9
    # Docker runs the first check one interval after the start.
    deadline = time.monotonic() + period + interval + 5
    status = ""
    while time.monotonic() < deadline:
        status = c.state()["Health"]["Status"]
        if status != "starting":
            break
        time.sleep(0.2)
    state = c.state()
    assert status == "healthy", state["Health"]
    assert state["Health"]["Log"][-1]["ExitCode"] == 0


def test_health_check_fails_when_the_service_is_on_another_port(fresh):
    # The service is told --port 9001 while MNIST_SERVE_PORT still says 8000:
    # the check must notice (short interval and start period, to see it soon).
    c = run_container(
        port=9001,
        options=("--health-interval", "1s", "--health-start-period", "1s",
                 "--health-retries", "1"),
        command=("mnist-serve", "--port", "9001"),
    )  # fmt: skip
    fresh.append(c)
    c.wait_ready(start_period())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if c.state()["Health"]["Status"] == "unhealthy":
            break
        time.sleep(0.2)
    assert c.state()["Health"]["Status"] == "unhealthy"


@pytest.mark.parametrize("workers", [1, 2])
def test_docker_stop_answers_requests_in_flight_and_exits_0(workers, fresh):
    c = run_container(env={"MNIST_SERVE_WORKERS": str(workers)})
    fresh.append(c)
    c.wait_ready(start_period())
    wait_for_log(c, "Application startup complete", workers, start_period())
    host, port = c.url.removeprefix("http://").split(":")
    head = (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    ) % len(BODY)
    sockets = [
        socket.create_connection((host, int(port)), timeout=30) for _ in range(4)
    ]
    try:
        for s in sockets:
            s.sendall(head + BODY[:100])
        # The service is reading all four bodies...
        wait_in_flight(c.url, len(sockets))
        stop = subprocess.Popen(["docker", "stop", "--time", "30", c.id])
        # ...when every worker has been told to shut down.
        wait_for_log(c, "Shutting down", workers, 30)
        for s in sockets:
            s.sendall(BODY[100:])
        answers = [read_response(s) for s in sockets]
    finally:
        for s in sockets:
            s.close()
    assert stop.wait(60) == 0
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert b'"label":' in answer
    state = c.state()
    assert state["ExitCode"] == 0, c.logs()
    assert state["OOMKilled"] is False
    assert "Traceback" not in c.logs()


def read_response(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length" and len(body) >= int(value):
                return answer
    return answer


def compose_limits() -> dict[str, str]:
    """The resource limits compose.yaml declares for the service."""
    compose = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
    return compose["services"]["mnist-serve"]["deploy"]["resources"]["limits"]


def compose_bytes(value: str) -> int:
    """Compose's byte values: 512M, 1G, 1.5g, 65536."""
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    unit = value[-1].lower()
    return int(float(value[:-1]) * units[unit]) if unit in units else int(value)


def test_compose_runs_the_same_image():
    compose = compose_command()
    if compose is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    project = f"mnist-serve-test-{RUN}".lower()
    host_port = free_port()
    env = {"MNIST_SERVE_IMAGE": IMAGE, "MNIST_SERVE_HOST_PORT": str(host_port)}
    base = [*compose, "--project-name", project]

    def run(*args: str) -> str:
        done = subprocess.run(
            [*base, *args], capture_output=True, text=True, timeout=300,
            env={**os.environ, **env}, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.strip()

    try:
        run("up", "--detach", "--no-build", "mnist-serve")
        (cid,) = run("ps", "--quiet", "mnist-serve").split()
        url = f"http://127.0.0.1:{host_port}"
        c = Container(cid, url, time.monotonic())
        c.wait_ready(start_period())
        r = httpx.post(f"{url}/predict", json={"x": [0.0] * 784}, timeout=30)
        assert r.status_code == 200
        details = inspect(cid)
        assert details["Image"] == inspect(IMAGE)["Id"]
        assert details["HostConfig"]["ReadonlyRootfs"] is True
        limits = compose_limits()
        assert details["HostConfig"]["Memory"] == compose_bytes(limits["memory"])
        assert details["HostConfig"]["NanoCpus"] == float(limits["cpus"]) * 10**9
        ports = details["HostConfig"]["PortBindings"]["8000/tcp"]
        assert [p["HostIp"] for p in ports] == ["127.0.0.1"]
    finally:
        run("down", "--volumes", "--timeout", "30")
