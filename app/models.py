"""What the service serves: models, their versions, and what they have done.

A :class:`Model` is one loaded, self-tested weights file under a name and a
version. :class:`Models` is the set the inference path looks a request's model
up in; every transport (``/predict``, ``/explain``, ``/v2``, gRPC) asks it,
never a global. It changes only by swapping in a whole new mapping, so a
request that has its model keeps it, whatever is loaded or unloaded meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from app.errors import clip
from app.exceptions import NotFoundError, NotReadyError
from core.errors import WeightsError
from core.network import INPUT_SIZE, Network
from core.weights import LoadedWeights

# The book's own sample_weight.pkl (../shared/data/book), recognised by its
# bytes, and the test accuracy it is known for.
BOOK_SHA256 = "b7f55a27988ba34c3777b0f1bbd464817c8a4db855723e6ff26f703501917a13"
BOOK_TEST_ACCURACY = 0.9352


@dataclass(frozen=True, slots=True)
class Model:
    """One servable network.

    Attributes
    ----------
    name : str
    version : int
        Positive; the newest ready version answers requests that name none.
    weights : LoadedWeights
        The network and its file's format, sha256, size and provenance.
    description : str or None
        From the repository's ``model.json``.
    """

    name: str
    version: int
    weights: LoadedWeights
    description: str | None = None

    @property
    def network(self) -> Network:
        return self.weights.network

    @property
    def activations(self) -> list[str]:
        """Each layer's activation, e.g. ``["sigmoid", "sigmoid", "softmax"]``."""
        return [self.network.hidden_activation] * 2 + ["softmax"]

    @property
    def source(self) -> str:
        """``book`` (the book's file), ``project`` (trained here, provenance
        attached) or ``custom``."""
        if self.weights.sha256 == BOOK_SHA256:
            return "book"
        return "project" if self.weights.provenance is not None else "custom"

    @property
    def test_accuracy(self) -> float | None:
        """Measured MNIST test accuracy, when known."""
        if self.weights.sha256 == BOOK_SHA256:
            return BOOK_TEST_ACCURACY
        accuracy: Any = (self.weights.provenance or {}).get("test_accuracy")
        return accuracy if isinstance(accuracy, float) else None


def self_test(network: Network) -> None:
    """One inference that must succeed before a model may answer.

    Raises
    ------
    WeightsError
        Non-finite output, rows that do not sum to 1, or batch answers that
        differ from single ones.
    """
    x = np.random.default_rng(0).random((8, INPUT_SIZE), dtype=np.float32)
    with np.errstate(all="ignore"):  # bad weights may overflow: that is the test
        batch = network.forward(x)
        single = network.forward(x[0])
    if not np.isfinite(batch).all():
        raise WeightsError("self-test: the network produced non-finite output")
    if not np.allclose(batch.sum(axis=1), 1.0, atol=1e-4):
        raise WeightsError("self-test: probabilities do not sum to 1")
    if not np.allclose(single[0], batch[0], atol=1e-5):
        raise WeightsError("self-test: single and batch answers differ")


@dataclass(slots=True)
class Stats:
    """What one model version has done (Triton's statistics extension)."""

    inference_count: int = 0  # images
    execution_count: int = 0  # forward passes
    success_count: int = 0
    success_ns: int = 0
    fail_count: int = 0
    fail_ns: int = 0
    last_inference_ms: int = 0

    def record(self, rows: int, ns: int, ok: bool) -> None:
        self.last_inference_ms = time.time_ns() // 1_000_000
        if ok:
            self.inference_count += rows
            self.execution_count += 1
            self.success_count += 1
            self.success_ns += ns
        else:
            self.fail_count += 1
            self.fail_ns += ns


Serving = Mapping[str, Mapping[int, Model]]


class Models:
    """The models being served; empty until the lifespan has loaded them.

    Parameters
    ----------
    default : str
        The model of requests that name none.
    """

    def __init__(self, default: str) -> None:
        self.default = default
        self._serving: Serving = MappingProxyType({})
        self._stats: dict[tuple[str, int], Stats] = {}
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every swap (e.g. the gRPC health service)."""
        self._listeners.append(listener)

    @property
    def serving(self) -> Serving:
        """A snapshot: name -> version -> model."""
        return self._serving

    def swap(self, serving: Mapping[str, Mapping[int, Model]]) -> None:
        """Serve exactly ``serving`` from now on (one assignment: atomic)."""
        self._serving = MappingProxyType(
            {
                name: MappingProxyType(dict(sorted(versions.items())))
                for name, versions in sorted(serving.items())
                if versions
            }
        )
        for listener in self._listeners:
            listener()

    def clear(self) -> None:
        self.swap({})

    @property
    def ready(self) -> bool:
        """True when the default model has a version to answer with."""
        return self.default in self._serving

    def __iter__(self) -> Iterator[Model]:
        """Every served version, by name then version."""
        for versions in self._serving.values():
            yield from versions.values()

    def stats(self, model: Model) -> Stats:
        key = (model.name, model.version)
        found = self._stats.get(key)
        if found is None:
            found = self._stats[key] = Stats()
        return found

    def get(self, name: str | None = None, version: str | int | None = None) -> Model:
        """The model that answers a request naming ``name`` and ``version``.

        The default model when ``name`` is None or empty, its newest version
        when ``version`` is None or empty.

        Raises
        ------
        NotReadyError
            Nothing is served yet (startup).
        NotFoundError
            No such model or version; the message names those that exist.
        """
        serving = self._serving
        if not serving:
            raise NotReadyError("the model is not loaded yet")
        # "" is "not named", as Triton's clients send an empty version.
        name = name or self.default
        version = version if version != "" else None
        versions = serving.get(name)
        if versions is None:
            served = ", ".join(repr(n) for n in serving)
            raise NotFoundError(f"unknown model {clip(name)!r}; models: {served}")
        if version is None:
            return versions[max(versions)]
        number = _version_number(version)
        if number is None or number not in versions:
            listed = ", ".join(repr(str(v)) for v in versions)
            raise NotFoundError(
                f"unknown version {clip(str(version))!r} of model {name!r}; "
                f"versions: {listed}"
            )
        return versions[number]


def _version_number(version: str | int) -> int | None:
    if isinstance(version, int):
        return version
    plain = version.isascii() and version.isdigit() and len(version) < 10
    return int(version) if plain else None
