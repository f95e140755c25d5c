"""The same network as an ONNX graph, for onnxruntime as a peer in the benchmarks.

Built with the ``onnx.helper`` API from the very arrays the service loads, so
both sides compute the same function: ``MatMul -> Add -> Sigmoid`` twice, then
``MatMul -> Add -> Softmax``. ``onnx`` and ``onnxruntime`` are optional (the
``bench`` extra); :func:`available` says whether they are installed.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from core.network import Network


def available() -> bool:
    """True when both ``onnx`` and ``onnxruntime`` can be imported."""
    return all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime"))


def build_model(network: Network) -> Any:
    """An ``onnx.ModelProto`` computing ``network.forward`` (batch dimension ``n``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if network.hidden_activation != "sigmoid":
        raise ValueError("the ONNX peer mirrors sigmoid hidden layers and softmax")
    nodes = []
    inits = []
    current = "x"
    params = network.params()
    for i in (1, 2, 3):
        for key in (f"W{i}", f"b{i}"):
            inits.append(numpy_helper.from_array(np.asarray(params[key]), key))
        nodes.append(helper.make_node("MatMul", [current, f"W{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]))
        out = "y" if i == 3 else f"z{i}"
        op = "Softmax" if i == 3 else "Sigmoid"
        attrs = {"axis": -1} if i == 3 else {}
        nodes.append(helper.make_node(op, [f"a{i}"], [out], **attrs))
        current = out
    graph = helper.make_graph(
        nodes,
        "mnist",
        [
            helper.make_tensor_value_info(
                "x", TensorProto.FLOAT, ["n", network.input_size]
            )
        ],
        [
            helper.make_tensor_value_info(
                "y", TensorProto.FLOAT, ["n", network.output_size]
            )
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


class OnnxPeer:
    """An onnxruntime session on the network's graph, ``intra_op`` threads."""

    def __init__(self, network: Network, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        model = build_model(network)
        self.session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self.threads = threads

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim == 1:
            x = x.reshape(1, -1)
        out: np.ndarray = self.session.run(["y"], {"x": x})[0]
        return out
