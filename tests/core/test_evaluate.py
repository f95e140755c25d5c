from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import InputError
from core.evaluate import evaluate, main
from core.network import Network
from core.weights import load_network
from tests.conftest import MNIST_DIR
from tests.core.conftest import write_idx


@pytest.mark.parametrize("batch_size", [1, 100, 333, 10000])
def test_book_weights_reproduce_9352(
    book_weights: Path, mnist_test: tuple[np.ndarray, np.ndarray], batch_size: int
) -> None:
    images, labels = mnist_test
    result = evaluate(load_network(book_weights), images, labels, batch_size)
    assert (result.correct, result.total) == (9352, 10000)
    assert result.confusion.sum() == 10000
    assert result.confusion.sum(axis=1).tolist() == np.bincount(labels).tolist()


def test_cli_prints_accuracy(
    book_weights: Path, mnist_test: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "--weights",
                str(book_weights),
                "--data",
                str(MNIST_DIR),
                "--batch-size",
                "50",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("accuracy 0.9352 (9352/10000)\n")
    assert "confusion matrix" in out
    assert "    5     892      793    0.8890" in out


def test_cli_errors(
    tmp_path: Path, weights_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["--weights", str(tmp_path / "missing.pkl"), "--data", str(tmp_path)]) == 1
    )
    assert "does not exist" in capsys.readouterr().err
    assert main(["--weights", str(weights_file), "--data", str(tmp_path)]) == 1
    assert "no t10k-images-idx3-ubyte" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(
            [
                "--weights",
                str(weights_file),
                "--data",
                str(tmp_path),
                "--batch-size",
                "0",
            ]
        )


def test_activation_option_overrides_a_pickle(
    weights_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The pickle holds sigmoid weights; told they are relu, the answers change.
    images = np.random.default_rng(4).integers(0, 256, (40, 28, 28), dtype=np.uint8)
    labels = np.arange(40, dtype=np.uint8) % 10
    write_idx(tmp_path, "t10k", images, labels)
    args = ["--weights", str(weights_file), "--data", str(tmp_path)]
    assert main(args) == 0
    as_sigmoid = capsys.readouterr().out
    assert main([*args, "--activation", "relu"]) == 0
    as_relu = capsys.readouterr().out
    assert as_relu != as_sigmoid
    sigmoid = load_network(weights_file)
    relu = load_network(weights_file, hidden_activation="relu")
    x = images.reshape(40, 784).astype(np.float32) / 255
    for out, network in ((as_sigmoid, sigmoid), (as_relu, relu)):
        correct = int((network.predict(x) == labels).sum())
        assert out.startswith(f"accuracy {correct / 40:.4f} ({correct}/40)")


def test_bad_batch_size_is_an_input_error(tiny_network: Network) -> None:
    images = np.zeros((2, 28, 28), np.uint8)
    with pytest.raises(InputError, match="batch_size must be >= 1"):
        evaluate(tiny_network, images, np.zeros(2, np.uint8), batch_size=0)


def test_confusion_counts(tiny_network: Network, rng: np.random.Generator) -> None:
    images = rng.integers(0, 256, (37, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 37, dtype=np.uint8)
    result = evaluate(tiny_network, images, labels, batch_size=8)
    predicted = tiny_network.predict(images.reshape(37, 784).astype(np.float32) / 255)
    assert result.correct == int((predicted == labels).sum())
    for t, p in zip(labels, predicted, strict=True):
        assert result.confusion[t, p] >= 1
