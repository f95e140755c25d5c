"""Run by tests/e2e/test_kserve.py with KServe's own interpreter (its own venv).

Asks a running mnist-serve, over gRPC, with KServe's InferenceGRPCClient: live,
ready, model ready, then an FP32 and a UINT8 inference. Prints the answers as
JSON for the test to compare with /predict's.
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest


async def main(url: str, fp32: list[list[float]], uint8: list[list[int]]) -> dict:
    client = InferenceGRPCClient(url)
    try:
        out: dict = {
            "live": await client.is_server_live(),
            "ready": await client.is_server_ready(),
            "model_ready": await client.is_model_ready("mnist"),
        }
        for key, data, datatype, dtype in (
            ("fp32", fp32, "FP32", np.float32),
            ("uint8", uint8, "UINT8", np.uint8),
        ):
            x = np.array(data, dtype=dtype)
            tensor = InferInput("input", list(x.shape), datatype)
            tensor.set_data_from_numpy(x, binary_data=True)
            response = await client.infer(InferRequest("mnist", [tensor]))
            answer = {o.name: o.as_numpy() for o in response.outputs}
            out[key] = {
                "probabilities": answer["probabilities"].astype("<f4").tobytes().hex(),
                "labels": answer["label"].tolist(),
                "model_version": response.model_version,
            }
        return out
    finally:
        await client.close()


if __name__ == "__main__":
    request = json.loads(sys.stdin.read())
    result = asyncio.run(main(request["url"], request["fp32"], request["uint8"]))
    print(json.dumps(result))  # noqa: T201
