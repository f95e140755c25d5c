"""What the service serves: models, their versions, and where their weights came from.

A :class:`Model` is one loaded, self-tested weights file under a name and a
version. :class:`Models` is the set the inference path looks a request's model
up in; every transport (``/predict``, ``/explain``, ``/v2``) asks it, never a
global.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import NotFoundError, NotReadyError, clip
from core.errors import WeightsError
from core.network import INPUT_SIZE, Network
from core.weights import LoadedWeights, load_weights

DEFAULT_MODEL = "mnist"
DEFAULT_VERSION = "1"

# The book's own sample_weight.pkl (../shared/data/book), recognised by its
# bytes, and the test accuracy it is known for.
BOOK_SHA256 = "b7f55a27988ba34c3777b0f1bbd464817c8a4db855723e6ff26f703501917a13"
BOOK_TEST_ACCURACY = 0.9352


@dataclass(frozen=True, slots=True)
class Model:
    """One servable network.

    Attributes
    ----------
    name, version : str
    weights : LoadedWeights
        The network and its file's format, sha256, size and provenance.
    source : {"book", "project", "custom"}
        The book's file, a file this project trained (provenance attached),
        or anything else.
    test_accuracy : float or None
        Measured MNIST test accuracy, when known.
    """

    name: str
    version: str
    weights: LoadedWeights
    source: str
    test_accuracy: float | None

    @property
    def network(self) -> Network:
        return self.weights.network

    @property
    def activations(self) -> list[str]:
        """Each layer's activation, e.g. ``["sigmoid", "sigmoid", "softmax"]``."""
        hidden = len(self.network.layer_sizes) - 2
        return [self.network.hidden_activation] * hidden + ["softmax"]


def _source(weights: LoadedWeights) -> tuple[str, float | None]:
    if weights.sha256 == BOOK_SHA256:
        return "book", BOOK_TEST_ACCURACY
    if weights.provenance is not None:
        accuracy: Any = weights.provenance.get("test_accuracy")
        return "project", accuracy if isinstance(accuracy, float) else None
    return "custom", None


def self_test(network: Network) -> None:
    """One inference that must succeed before a model may answer.

    Raises
    ------
    WeightsError
        Non-finite output, rows that do not sum to 1, or batch answers that
        differ from single ones.
    """
    x = np.random.default_rng(0).random((8, INPUT_SIZE), dtype=np.float32)
    batch = network.forward(x)
    single = network.forward(x[0])
    if not np.isfinite(batch).all():
        raise WeightsError("self-test: the network produced non-finite output")
    if not np.allclose(batch.sum(axis=1), 1.0, atol=1e-4):
        raise WeightsError("self-test: probabilities do not sum to 1")
    if not np.allclose(single[0], batch[0], atol=1e-5):
        raise WeightsError("self-test: single and batch answers differ")


def load_model(
    path: Path,
    *,
    max_bytes: int,
    name: str = DEFAULT_MODEL,
    version: str = DEFAULT_VERSION,
) -> Model:
    """Load, check and self-test a weights file as a model.

    Raises
    ------
    WeightsError
        Anything wrong with the file or the network it holds.
    """
    weights = load_weights(path, max_bytes)
    self_test(weights.network)
    source, accuracy = _source(weights)
    return Model(name, version, weights, source, accuracy)


class Models:
    """The models being served; empty until the lifespan has loaded them."""

    def __init__(self) -> None:
        self._models: dict[str, Model] = {}

    def serve(self, model: Model) -> None:
        self._models[model.name] = model

    def clear(self) -> None:
        self._models.clear()

    @property
    def ready(self) -> bool:
        return bool(self._models)

    def __iter__(self) -> Iterator[Model]:
        return iter(list(self._models.values()))

    def get(self, name: str | None = None, version: str | None = None) -> Model:
        """The model that answers a request naming ``name`` (default: the default).

        Raises
        ------
        NotReadyError
            Nothing is loaded yet.
        NotFoundError
            No such model or version.
        """
        if not self._models:
            raise NotReadyError("the model is not loaded yet")
        model = self._models.get(name or DEFAULT_MODEL)
        if model is None:
            served = ", ".join(repr(m) for m in self._models)
            raise NotFoundError(
                f"unknown model {clip(name or '')!r}; this server serves {served}"
            )
        if version is not None and version != model.version:
            raise NotFoundError(
                f"unknown version {clip(version)!r} of model {model.name!r}; "
                f"versions: [{model.version!r}]"
            )
        return model
