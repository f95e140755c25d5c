"""The model repository: layout, several models, versions, reload, admin endpoints."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.repository import choose_default, scan
from app.settings import Settings
from core.errors import WeightsError
from core.network import Network
from core.weights import save_network
from tests.app.conftest import assert_problem
from tests.conftest import random_network

TOKEN = "s3cret-admin-token-for-tests"
X = np.random.default_rng(5).random((3, 784), dtype=np.float32)


def _write(root: Path, name: str, version: int, network: Network) -> Path:
    directory = root / name / str(version)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "weights.pkl"
    save_network(network, path)
    return path


def _net(seed: int) -> Network:
    return random_network(np.random.default_rng(seed))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    _write(root, "mnist", 1, _net(1))
    _write(root, "mnist", 2, _net(2))
    _write(root, "other", 1, _net(3))
    (root / "other" / "model.json").write_text(
        '{"description": "another one", "activation": "sigmoid"}'
    )
    return root


def _client(repo: Path, raise_errors: bool = False, **settings: object) -> TestClient:
    app = create_app(Settings(model_repository=repo, **settings))  # type: ignore[arg-type]
    return TestClient(app, raise_server_exceptions=raise_errors)


def _sync(client: TestClient) -> None:
    """One repository scan now (what poll mode does every interval)."""
    repository = client.app.state.service.repository  # type: ignore[attr-defined]
    client.portal.call(repository.sync)  # type: ignore[union-attr]


def _labels(client: TestClient, query: str = "") -> tuple[list[int], str, str]:
    r = client.post(f"/predict{query}", json={"x": X.tolist()})
    assert r.status_code == 200, r.text
    return r.json()["labels"], r.headers["x-model"], r.headers["x-model-version"]


def test_scan_reads_models_versions_and_model_json(repo: Path) -> None:
    (repo / "bad name!").mkdir()
    (repo / "stats").mkdir()
    (repo / "both" / "1").mkdir(parents=True)
    (repo / "both" / "1" / "weights.pkl").write_bytes(b"x")
    (repo / "both" / "1" / "weights.npz").write_bytes(b"x")
    (repo / "empty" / "3").mkdir(parents=True)
    (repo / "mnist" / "notes").mkdir()  # not a version: ignored
    sources, problems = scan(repo)
    assert [(s.name, s.version) for s in sources] == [
        ("mnist", 1),
        ("mnist", 2),
        ("other", 1),
    ]
    assert sources[2].description == "another one"
    reasons = {(p.name, p.version): p.reason for p in problems}
    assert reasons[("bad name!", None)] == "not a valid model name"
    assert reasons[("stats", None)] == "not a valid model name"
    assert "both" in reasons[("both", 1)]
    assert "no weights" in reasons[("empty", 3)]


def test_links_out_of_the_repository_are_refused(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _write(outside, "evil", 1, _net(9))
    os.symlink(outside / "evil", repo / "evil")
    os.symlink(outside / "evil" / "1", repo / "other" / "7")
    (repo / "loop").symlink_to(repo / "loop")
    sources, problems = scan(repo)
    assert {(s.name, s.version) for s in sources} == {
        ("mnist", 1),
        ("mnist", 2),
        ("other", 1),
    }
    reasons = {(p.name, p.version): p.reason for p in problems}
    assert "outside" in reasons[("evil", None)]
    assert "inside the repository" in reasons[("other", 7)]


def test_several_models_and_versions_answer_by_name(repo: Path) -> None:
    with _client(repo) as c:
        listing = c.get("/models").json()
        assert [(m["name"], m["versions"], m["default"]) for m in listing] == [
            ("mnist", ["1", "2"], True),
            ("other", ["1"], False),
        ]
        assert listing[1]["description"] == "another one"
        # The newest version answers unless one is named.
        labels, name, version = _labels(c)
        assert (name, version) == ("mnist", "2")
        assert labels == _net(2).predict(X).tolist()
        assert _labels(c, "?version=1")[0] == _net(1).predict(X).tolist()
        assert _labels(c, "?model=other")[1:] == ("other", "1")
        assert c.get("/models/other").json()["version"] == "1"
        assert c.get("/models/mnist?version=1").json()["version"] == "1"
        for query, says in (
            ("?model=nope", "unknown model 'nope'; models: 'mnist', 'other'"),
            ("?version=3", "unknown version '3' of model 'mnist'; versions: '1', '2'"),
            ("?version=..%2F1", "unknown version"),
            ("?model=..%2F..%2Fetc", "unknown model"),
        ):
            r = c.post(f"/predict{query}", json={"x": X.tolist()})
            assert_problem(r, 404, says)
        r = c.post("/explain?model=other", json={"x": X[0].tolist()})
        assert r.status_code == 200
        assert r.headers["x-model"] == "other"
        # Every model and version under /v2 too.
        meta = c.get("/v2/models/mnist").json()
        assert meta["versions"] == ["1", "2"]
        assert c.get("/v2/models/other/versions/1/ready").status_code == 200
        assert c.get("/v2/models/other/versions/2/ready").status_code == 404


def test_the_default_model_is_mnist_the_only_one_or_named() -> None:
    assert choose_default(None, ["a", "mnist"]) == "mnist"
    assert choose_default(None, ["a"]) == "a"
    assert choose_default("a", ["a", "mnist"]) == "a"
    with pytest.raises(WeightsError, match="MNIST_SERVE_DEFAULT_MODEL"):
        choose_default(None, ["a", "b"])


def test_startup_fails_when_the_default_model_cannot_load(repo: Path) -> None:
    for version in (1, 2):
        (repo / "mnist" / str(version) / "weights.pkl").write_bytes(b"\x80\x04junk")
    with (
        pytest.raises(WeightsError, match="model 'mnist': version 1: "),
        _client(repo, raise_errors=True),
    ):
        pass


def test_poll_follows_the_files_and_keeps_serving_through_bad_ones(
    repo: Path,
) -> None:
    with _client(repo, model_control="poll", poll_seconds=3600, admin_token=TOKEN) as c:
        assert _labels(c)[2] == "2"
        # A new version appears.
        _write(repo, "mnist", 3, _net(4))
        _sync(c)
        assert _labels(c)[0] == _net(4).predict(X).tolist()
        # It is replaced by a truncated file: the old one keeps answering.
        path = repo / "mnist" / "3" / "weights.pkl"
        path.write_bytes(path.read_bytes()[:500])
        _sync(c)
        assert _labels(c)[0] == _net(4).predict(X).tolist()
        index = _index(c)
        assert index[("mnist", "3")]["state"] == "UNAVAILABLE"
        assert "still served" in index[("mnist", "3")]["reason"]
        # ... and by a hostile pickle, which runs nothing.
        marker = repo / "pwned"
        path.write_bytes(pickle.dumps(_Exploit(f"touch {marker}"), protocol=4))
        _sync(c)
        assert not marker.exists()
        assert _labels(c)[0] == _net(4).predict(X).tolist()
        # A good file again: it reloads.
        save_network(_net(5), path)
        _sync(c)
        assert _labels(c)[0] == _net(5).predict(X).tolist()
        assert _index(c)[("mnist", "3")]["state"] == "READY"
        # Removed: the version goes, the next newest answers.
        for f in path.parent.iterdir():
            f.unlink()
        path.parent.rmdir()
        _sync(c)
        assert _labels(c)[2] == "2"
        # Each failed file was counted once, not once per scan.
        assert 'mnist_serve_model_load_failures_total{model="mnist"} 2.0' in (
            c.get("/metrics").text
        )
        # Load and unload are for explicit mode only.
        r = c.post("/v2/repository/models/mnist/load", headers=_auth())
        assert r.status_code == 403
        assert "explicit" in r.json()["error"]


class _Exploit:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (self.command,))


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _index(c: TestClient) -> dict[tuple[str, str | None], dict[str, str]]:
    r = c.post("/v2/repository/index", headers=_auth())
    assert r.status_code == 200, r.text
    return {(e["name"], e.get("version")): e for e in r.json()}


def test_explicit_load_and_unload(repo: Path) -> None:
    with _client(repo, model_control="explicit", admin_token=TOKEN) as c:
        _write(repo, "mnist", 3, _net(6))
        # Explicit mode: the new file is not seen until a load asks for it.
        _sync_if_polling = _labels(c)[2]
        assert _sync_if_polling == "2"
        assert (
            c.post("/v2/repository/models/mnist/load", headers=_auth()).status_code
            == 200
        )
        assert _labels(c)[2] == "3"
        assert (
            c.post("/v2/repository/models/other/unload", headers=_auth()).status_code
            == 200
        )
        assert_problem(c.post("/predict?model=other", json={"x": X.tolist()}), 404)
        assert _index(c)[("other", None)]["state"] == "UNLOADED"
        assert (
            c.post("/v2/repository/models/other/load", headers=_auth()).status_code
            == 200
        )
        assert _labels(c, "?model=other")[1] == "other"
        r = c.post("/v2/repository/models/nope/load", headers=_auth())
        assert r.status_code == 404
        r = c.post("/v2/repository/models/..%2F..%2Fetc/load", headers=_auth())
        assert r.status_code == 404
        r = c.post(
            "/v2/repository/models/mnist/load",
            headers=_auth(),
            json={"parameters": {"config": "{}"}},
        )
        assert r.status_code == 422
        # A load whose files are all bad is refused, and says why.
        (repo / "other" / "1" / "weights.pkl").write_bytes(b"\x80\x04junk")
        r = c.post("/v2/repository/models/other/load", headers=_auth())
        assert r.status_code == 409
        assert "version 1: not a valid weights pickle" in r.json()["error"]
        assert "still served" in r.json()["error"]
        assert _labels(c, "?model=other")[1] == "other"


@pytest.mark.parametrize(
    ("configured", "headers", "status"),
    [
        (TOKEN, {}, 401),
        (TOKEN, {"Authorization": "Bearer wrong"}, 403),
        (TOKEN, {"Authorization": f"Basic {TOKEN}"}, 403),
        (TOKEN, {"Authorization": "Bearer " + "x" * 10_000}, 403),
        (None, _auth(), 403),
        (TOKEN, _auth(), 200),
    ],
)
def test_the_repository_endpoints_need_the_token(
    repo: Path,
    configured: str | None,
    headers: dict[str, str],
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.DEBUG),
        _client(repo, model_control="explicit", admin_token=configured) as c,
    ):
        for path in ("index", "models/other/unload"):
            r = c.post(f"/v2/repository/{path}", headers=headers)
            assert r.status_code == status, r.text
            assert TOKEN not in r.text
            if status == 401:
                assert r.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in c.get("/model").text
        assert TOKEN not in c.get("/metrics").text
    assert TOKEN not in caplog.text


def test_statistics_count_every_inference_by_version(repo: Path) -> None:
    with _client(repo) as c:
        _labels(c)  # 3 images, version 2
        _labels(c, "?version=1")
        c.post("/explain", json={"x": X[0].tolist()})
        c.post(
            "/v2/models/mnist/versions/2/infer",
            json={
                "inputs": [
                    {
                        "name": "input",
                        "shape": [2, 784],
                        "datatype": "FP32",
                        "data": X[:2].tolist(),
                    }
                ]
            },
        )
        stats = {
            s["version"]: s
            for s in c.get("/v2/models/mnist/stats").json()["model_stats"]
        }
        assert stats["2"]["inference_count"] == 3 + 1 + 2
        assert stats["2"]["execution_count"] == 3
        assert stats["2"]["inference_stats"]["success"]["count"] == 3
        assert stats["2"]["inference_stats"]["success"]["ns"] > 0
        assert stats["1"]["inference_count"] == 3
        everything = c.get("/v2/models/stats").json()["model_stats"]
        assert {(s["name"], s["version"]) for s in everything} == {
            ("mnist", "1"),
            ("mnist", "2"),
            ("other", "1"),
        }
        config = c.get("/v2/models/other/config").json()
        assert config["name"] == "other"
        assert config["input"][0]["dims"] == [784]
        assert config["input"][0]["data_type"] == "TYPE_FP32"
        assert [o["dims"] for o in config["output"]] == [[10], []]
        server = c.get("/v2").json()
        assert {"model_configuration", "statistics", "model_repository"} <= set(
            server["extensions"]
        )


def test_the_control_file_keeps_workers_in_step(tmp_path: Path) -> None:
    from app.repository.control import ControlFile, ControlState

    path = tmp_path / "models.json"
    one, other = ControlFile(path), ControlFile(path)
    one.write_startup({"mnist": [1, 2]})
    assert other.changed() == ControlState(startup={"mnist": [1, 2]})
    assert other.changed() is None  # nothing new since
    assert one.record("mnist", load=True) == 1
    assert one.record("mnist", load=True) == 2
    assert one.changed() is None  # its own writes are not news to itself
    one.record("other", load=False)
    state = other.changed()
    assert state is not None
    assert state.generations == {"mnist": 2}
    assert state.unloaded == ["other"]
    assert state.startup == {"mnist": [1, 2]}
    one.record("other", load=True)
    assert other.read().unloaded == []
    # A damaged file reads as an empty state, never as an error.
    path.write_text("{not json")
    assert other.read() == ControlState()
    path.write_text('{"generations": {"a": "x"}, "unloaded": "b", "startup": [1]}')
    assert other.read() == ControlState()


def test_repository_options_are_charged_like_any_json_body(repo: Path) -> None:
    budget = 16 * 1024 * 1024
    with _client(repo, admin_token=TOKEN, memory_budget=budget) as c:
        # Tiny arrays cost orjson far more than their bytes: refused, unread.
        nested = b'{"ready": [' + b",".join([b"[0]"] * 100_000) + b"]}"
        r = c.post("/v2/repository/index", headers=_auth(), content=nested)
        assert r.status_code == 413, r.text
        assert "reading the JSON text needs about" in r.json()["error"]
        bad = c.post("/v2/repository/index", headers=_auth(), content=b"[")
        assert bad.status_code == 422, bad.text  # as before: not JSON
        assert "must be JSON" in bad.json()["error"]
        assert _index(c)[("mnist", "2")]["state"] == "READY"


def test_single_files_need_a_valid_model_name_too(tmp_path: Path) -> None:
    path = tmp_path / "w.pkl"
    save_network(_net(1), path)
    models = {"other": path, "stats": path, "a/b": path}
    with TestClient(create_app(Settings(weights=path, models=models))) as c:
        entries = {e.name: e for e in c.app.state.service.repository.index()}  # type: ignore[attr-defined]
        assert entries["other"].state == "READY"
        for name in ("stats", "a/b"):  # would hide /v2/models/stats; no URL reaches it
            assert entries[name].state == "UNAVAILABLE"
            assert entries[name].reason == "not a valid model name"
        assert c.get("/v2/models/stats").status_code == 200  # the route, not a model
