"""The book's network as a Seldon MLServer custom runtime: MLServer's peer rows.

Runs inside MLServer's own virtual environment (``python -m bench.mlserver
install``), which has NumPy and MLServer but not this project: it reads the
weights from an ``.npz`` that the benchmark writes from the served file, and
runs the chapter-3 forward pass in float32, as ``core.network`` does.
"""

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class MnistRuntime(MLModel):
    async def load(self) -> bool:
        with np.load(self.settings.parameters.uri, allow_pickle=False) as f:
            self.layers = [
                (f[f"W{i}"].astype(np.float32), f[f"b{i}"].astype(np.float32))
                for i in (1, 2, 3)
            ]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        sent = payload.inputs[0]
        x = NumpyCodec.decode_input(sent).reshape(-1, 784).astype(np.float32)
        if sent.datatype == "UINT8":
            x /= np.float32(255)
        for w, b in self.layers[:-1]:
            x = 1 / (1 + np.exp(-(x @ w + b)))
        w, b = self.layers[-1]
        a = x @ w + b
        y = np.exp(a - a.max(axis=1, keepdims=True))
        y /= y.sum(axis=1, keepdims=True)
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output("probabilities", y),
                NumpyCodec.encode_output("label", y.argmax(axis=1)),
            ],
        )
