"""The one inference path: every transport hands it a :class:`core.batch.Batch`.

It looks the model up, runs the network where it costs least (inline on the
event loop for small batches, in the thread pool for large ones), and records
what it did in the metrics. ``/predict``, ``/explain`` and ``/v2`` call it;
none of them touches a network directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from app.admission import run_heavy
from app.models import Model, Models
from core.batch import Batch
from core.explain import Explanation, explain

T = TypeVar("T")


class Observer(Protocol):
    """Where inference is recorded besides each model's statistics (the metrics)."""

    def observe_inference(
        self, model: str, version: int, rows: int, seconds: float
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Prediction:
    """A batch's answers.

    Attributes
    ----------
    model : Model
        The model (and version) that answered.
    probabilities : ndarray of shape (n, 10), float32
        Softmax output; rows sum to 1.
    labels : ndarray of shape (n,), int64
        The arg-max of each row.
    """

    model: Model
    probabilities: NDArray[np.float32]
    labels: NDArray[np.int64]


class Inference:
    """Runs batches through the models of a :class:`Models`.

    Parameters
    ----------
    models : Models
        Where requests' models are looked up.
    inline_rows : int
        Batches up to this many rows run on the event loop: below about a
        thousand rows the hop to a worker thread costs more than it frees.
    observer : Observer or None
        Told of every forward pass (the metrics).
    """

    def __init__(
        self, models: Models, *, inline_rows: int, observer: Observer | None = None
    ) -> None:
        self.models = models
        self.inline_rows = inline_rows
        self.observer = observer

    async def predict(
        self, batch: Batch, model: str | None = None, version: str | None = None
    ) -> Prediction:
        """Probabilities and labels of every image in ``batch``.

        ``model`` and ``version`` pick the model (default: the default model's
        newest version); the answer says which one answered.
        """
        found = self.models.get(model, version)
        probabilities = await self._run(found, batch, found.network.forward)
        labels = probabilities.argmax(axis=1).astype(np.int64)
        return Prediction(found, probabilities, labels)

    async def explain(
        self,
        batch: Batch,
        target: int | None,
        model: str | None = None,
        version: str | None = None,
    ) -> tuple[Model, Explanation]:
        """Every layer's output and the saliency of ``target`` for one image."""
        found = self.models.get(model, version)
        result = await self._run(
            found, batch, lambda x: explain(found.network, x, target)
        )
        return found, result

    async def _run(
        self, model: Model, batch: Batch, fn: Callable[[NDArray[np.float32]], T]
    ) -> T:
        stats = self.models.stats(model)
        start = time.perf_counter_ns()
        try:
            if batch.rows <= self.inline_rows:
                out = fn(batch.x)
            else:
                out = await run_heavy(fn, batch.x)
        except BaseException:
            stats.record(batch.rows, time.perf_counter_ns() - start, ok=False)
            raise
        ns = time.perf_counter_ns() - start
        stats.record(batch.rows, ns, ok=True)
        if self.observer is not None:
            self.observer.observe_inference(
                model.name, model.version, batch.rows, ns / 1e9
            )
        return out
