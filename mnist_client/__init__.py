"""A typed Python client for mnist-serve: ``Client`` (blocking) and ``AsyncClient``.

>>> from mnist_client import Client
>>> with Client("http://127.0.0.1:8000") as client:  # doctest: +SKIP
...     print(client.predict(image).label)
"""

from mnist_client.client import (
    ActivationInfo,
    ActivationValues,
    AsyncClient,
    BatchPrediction,
    Client,
    MnistServeError,
    ModelInfo,
    Prediction,
    WeightsInfo,
)

__all__ = [
    "ActivationInfo",
    "ActivationValues",
    "AsyncClient",
    "BatchPrediction",
    "Client",
    "MnistServeError",
    "ModelInfo",
    "Prediction",
    "WeightsInfo",
]
