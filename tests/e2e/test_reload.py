"""Live reload under load: versions come and go while 64 connections predict.

A real server polls a temporary repository every quarter second while wrk
(or the asyncio load generator when wrk is absent) keeps 64 connections busy;
meanwhile versions are added, replaced by a truncated and by a hostile file,
replaced by a good one, and removed. No request may fail or be dropped, and
each change must show in the answers within about one poll interval (plus the
load itself, on a busy machine).
"""

from __future__ import annotations

import http.client
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from bench.loadgen import http_generator, http_load
from core.network import Network
from core.weights import save_network
from tests.conftest import random_network
from tests.e2e.conftest import Server, mnist_serve_command

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POLL = 0.25
TOKEN = "reload-test-token"
# From writing a file to answering with it: one poll, the load and self-test,
# and a busy 2-core machine shared with 64 connections of load.
SWITCH_WITHIN = 5.0
X = np.random.default_rng(11).random((1, 784), dtype=np.float32)
BODY = orjson.dumps({"x": X[0].tolist()})


def _net(seed: int) -> Network:
    return random_network(np.random.default_rng(seed))


def _put(root: Path, version: int, network: Network) -> None:
    """Write a version as a careful user would: to a temporary name, then rename."""
    directory = root / "mnist" / str(version)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / ".weights.pkl.tmp"
    save_network(network, tmp)
    tmp.rename(directory / "weights.pkl")


def _remove(root: Path, version: int) -> None:
    directory = root / "mnist" / str(version)
    for f in directory.iterdir():
        f.unlink()
    directory.rmdir()


class _Exploit:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("echo pwned > /tmp/mnist-serve-reload-pwned",))


def _answer(url: str) -> tuple[str, list[float]]:
    """The version that answers a fresh connection, and its probabilities."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", "/predict", BODY, {"content-type": "application/json"})
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200, body[:300]
        return r.getheader("x-model-version") or "", orjson.loads(body)["probabilities"]
    finally:
        conn.close()


def _post(url: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = {
            "authorization": f"Bearer {TOKEN}",
            "content-type": "application/json",
        }
        conn.request("POST", path, body, headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _state(url: str, version: str) -> str:
    status, body = _post(url, "/v2/repository/index")
    assert status == 200, body
    states = [e["state"] for e in orjson.loads(body) if e.get("version") == version]
    return states[0] if states else "ABSENT"


def _until(condition: Callable[[], bool]) -> None:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < 60, "the condition never held"
        time.sleep(0.02)


def _wait_for(url: str, condition: Callable[[str, list[float]], bool]) -> float:
    start = time.monotonic()
    while time.monotonic() - start < 60:
        if condition(*_answer(url)):
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError("the change never showed in the answers")


def _probabilities(network: Network) -> list[float]:
    return [float(v) for v in network.forward(X)[0]]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    _put(root, 1, _net(1))
    return root


@pytest.fixture
def server(repo: Path, tmp_path: Path) -> Iterator[Server]:
    env = {
        "MNIST_SERVE_MODEL_REPOSITORY": str(repo),
        "MNIST_SERVE_MODEL_CONTROL": "poll",
        "MNIST_SERVE_POLL_SECONDS": str(POLL),
        "MNIST_SERVE_ADMIN_TOKEN": TOKEN,
    }
    command = [*mnist_serve_command(), "--host", "127.0.0.1"]
    s = _start(command, tmp_path, env)
    yield s
    assert s.stop() == 0


def _start(command: list[str], tmp_path: Path, env: dict[str, str]) -> Server:
    from bench.procs import free_port, launch, wait_ready

    port = free_port()
    log = tmp_path / f"server-{port}.log"
    process = launch([*command, "--port", str(port)], log, env)
    url = f"http://127.0.0.1:{port}"
    wait_ready(process, url, log, timeout=60)
    return Server(process, url, log)


def test_versions_change_under_load_without_a_failed_request(
    server: Server, repo: Path, record_property: Callable[[str, object], None]
) -> None:
    headers = {"Content-Type": "application/json"}
    result: dict[str, object] = {}
    loader = threading.Thread(
        target=lambda: result.update(
            http_load(server.url + "/predict", BODY, headers, 14, 64)
        )
    )
    loader.start()
    switches = {}
    try:
        # A new version: answers move to it.
        _put(repo, 2, _net(2))
        switches["add v2"] = _wait_for(server.url, lambda v, _: v == "2")
        # Replaced by a truncated file: v2's previous weights keep answering.
        path = repo / "mnist" / "2" / "weights.pkl"
        path.write_bytes(path.read_bytes()[:300])
        _until(lambda: _state(server.url, "2") == "UNAVAILABLE")
        version, probabilities = _answer(server.url)
        assert version == "2"
        np.testing.assert_allclose(probabilities, _probabilities(_net(2)), rtol=1e-6)
        # ... and by a hostile pickle, which must run nothing.
        good = path.with_name(".good.pkl")
        save_network(_net(2), good)
        good.rename(path)
        _until(lambda: _state(server.url, "2") == "READY")
        path.write_bytes(pickle.dumps(_Exploit(), protocol=4))
        _until(lambda: _state(server.url, "2") == "UNAVAILABLE")
        version, probabilities = _answer(server.url)
        assert version == "2"
        np.testing.assert_allclose(probabilities, _probabilities(_net(2)), rtol=1e-6)
        assert not Path("/tmp/mnist-serve-reload-pwned").exists()
        # A good replacement: it reloads in place.
        tmp = path.with_name(".new.pkl")
        save_network(_net(3), tmp)
        tmp.rename(path)
        want = _probabilities(_net(3))
        switches["replace v2"] = _wait_for(
            server.url, lambda v, p: v == "2" and np.allclose(p, want, rtol=1e-6)
        )
        # A newer version, then removed again: answers go back to v2.
        _put(repo, 3, _net(4))
        switches["add v3"] = _wait_for(server.url, lambda v, _: v == "3")
        _remove(repo, 3)
        switches["remove v3"] = _wait_for(server.url, lambda v, _: v == "2")
        _remove(repo, 2)
        switches["remove v2"] = _wait_for(server.url, lambda v, _: v == "1")
    finally:
        loader.join(60)
    record_property("load_generator", http_generator())
    record_property("load", result)
    record_property("switch_seconds", switches)
    # The figures, for `pytest -s` and the notes (also in the junit properties).
    print(f"\nload ({http_generator()}): {result}\nswitch seconds: {switches}")  # noqa: T201
    assert result["requests"] > 0
    assert result["non_2xx"] == 0, result
    assert result["socket_errors"] == 0, result
    assert max(switches.values()) < SWITCH_WITHIN, switches


def test_every_worker_converges(repo: Path, tmp_path: Path) -> None:
    env = {
        "MNIST_SERVE_MODEL_REPOSITORY": str(repo),
        "MNIST_SERVE_MODEL_CONTROL": "poll",
        "MNIST_SERVE_POLL_SECONDS": str(POLL),
    }
    s = _start([*mnist_serve_command(), "--workers", "2"], tmp_path, env)
    try:
        _put(repo, 2, _net(2))
        _wait_for(s.url, lambda v, _: v == "2")
        # Each worker scans on its own: once 60 fresh connections in a row,
        # whichever worker takes each, answer v2, both have converged.
        _until(lambda: all(_answer(s.url)[0] == "2" for _ in range(60)))
    finally:
        assert s.stop() == 0


def test_explicit_loads_reach_every_worker(repo: Path, tmp_path: Path) -> None:
    env = {
        "MNIST_SERVE_MODEL_REPOSITORY": str(repo),
        "MNIST_SERVE_MODEL_CONTROL": "explicit",
        "MNIST_SERVE_ADMIN_TOKEN": TOKEN,
    }
    s = _start([*mnist_serve_command(), "--workers", "2"], tmp_path, env)
    try:
        _put(repo, 2, _net(2))
        assert {_answer(s.url)[0] for _ in range(20)} == {"1"}  # not until a load
        assert _post(s.url, "/v2/repository/models/mnist/load", b"{}")[0] == 200
        # Whichever worker took the load, 60 fresh connections in a row
        # answering v2 mean the other has followed too.
        _until(lambda: all(_answer(s.url)[0] == "2" for _ in range(60)))
    finally:
        assert s.stop() == 0
