"""What the Open Inference Protocol says about the server and its models.

Server metadata, model metadata, Triton's model configuration, statistics and
repository index, as plain dictionaries with the protocol's field names: the
REST routes send them as JSON, the gRPC service copies them into its messages
(protobuf's ``ParseDict``), so both transports describe the same things the
same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.codecs.tensors import INPUT_NAME, OUTPUT_DATATYPES, OUTPUT_SHAPES
from app.exceptions import InvalidRequestError
from app.models import Model, Models
from app.repository import Entry
from core.network import INPUT_SIZE

SERVER_NAME = "mnist-serve"
# Triton's names for the protocol extensions served here.
EXTENSIONS = [
    "binary_tensor_data",
    "classification",
    "model_configuration",
    "statistics",
    "model_repository",
]


def server_metadata(version: str) -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": version, "extensions": EXTENSIONS}


def model_metadata(model: Model, versions: Iterable[int]) -> dict[str, Any]:
    """A model's tensors (UINT8 input is accepted too; the metadata says FP32)."""
    return {
        "name": model.name,
        "versions": [str(v) for v in versions],
        "platform": "numpy",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, INPUT_SIZE]}],
        "outputs": [
            {"name": name, "datatype": datatype, "shape": OUTPUT_SHAPES[name]}
            for name, datatype in OUTPUT_DATATYPES.items()
        ],
    }


def model_config(model: Model, max_batch_size: int) -> dict[str, Any]:
    """Triton's model configuration: the batch dimension is left out of dims."""
    return {
        "name": model.name,
        "platform": "numpy",
        "backend": SERVER_NAME,
        "max_batch_size": max_batch_size,
        "version_policy": {"latest": {"num_versions": 1}},
        "input": [
            {
                "name": INPUT_NAME,
                "data_type": "TYPE_FP32",
                "format": "FORMAT_NONE",
                "dims": [INPUT_SIZE],
            }
        ],
        "output": [
            {
                "name": name,
                "data_type": f"TYPE_{datatype}",
                "dims": OUTPUT_SHAPES[name][1:],
            }
            for name, datatype in OUTPUT_DATATYPES.items()
        ],
        "parameters": {
            "hidden_activation": {"string_value": model.network.hidden_activation},
            "accepted_input_datatypes": {"string_value": "FP32,UINT8"},
        },
    }


def model_statistics(models: Models, served: Iterable[Model]) -> dict[str, Any]:
    """Triton's statistics extension for these model versions."""
    rows = []
    for model in served:
        stats = models.stats(model)
        success = {"count": stats.success_count, "ns": stats.success_ns}
        rows.append(
            {
                "name": model.name,
                "version": str(model.version),
                "last_inference": stats.last_inference_ms,
                "inference_count": stats.inference_count,
                "execution_count": stats.execution_count,
                "inference_stats": {
                    "success": success,
                    "fail": {"count": stats.fail_count, "ns": stats.fail_ns},
                    "queue": {"count": 0, "ns": 0},
                    "compute_input": {"count": 0, "ns": 0},
                    "compute_infer": success,
                    "compute_output": {"count": 0, "ns": 0},
                },
            }
        )
    return {"model_stats": rows}


def repository_index(
    entries: Iterable[Entry], ready_only: bool
) -> list[dict[str, Any]]:
    """Triton's repository index: every model and version, its state and why."""
    out = []
    for entry in entries:
        if ready_only and entry.state != "READY":
            continue
        row: dict[str, Any] = {"name": entry.name}
        if entry.version is not None:
            row["version"] = str(entry.version)
        row["state"] = entry.state
        row["reason"] = entry.reason
        out.append(row)
    return out


def check_load_parameters(parameters: object) -> None:
    """A repository load request's parameters: none but ``unload_dependents``.

    Raises
    ------
    InvalidRequestError
        Configuration or file overrides (the repository's files are what loads).
    """
    if not isinstance(parameters, dict) or set(parameters) - {"unload_dependents"}:
        raise InvalidRequestError(
            "configuration and file overrides are not supported: the repository's "
            "files are what loads"
        )
