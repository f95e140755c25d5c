"""Typed clients for mnist-serve over httpx: :class:`Client` and :class:`AsyncClient`.

Both have the same methods; the async ones are coroutines. Requests are built
and answers parsed by the same functions, so the two cannot drift apart.

>>> with Client("http://127.0.0.1:8000") as client:  # doctest: +SKIP
...     client.predict(image).label
7
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypedDict

import httpx
import numpy as np
import orjson
from numpy.typing import ArrayLike, NDArray

Preprocess = Literal["auto", "mnist", "raw"]
ImageSource = bytes | str | os.PathLike[str]
DEFAULT_URL = "http://127.0.0.1:8000"

_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


@dataclass(frozen=True, slots=True)
class Prediction:
    """One image's answer: the digit and the softmax output, shape ``(10,)``."""

    label: int
    probabilities: NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class BatchPrediction:
    """A batch's answers: labels ``(n,)`` and probabilities ``(n, 10)``."""

    labels: NDArray[np.int64]
    probabilities: NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> Prediction:
        return Prediction(int(self.labels[i]), self.probabilities[i])


class ActivationInfo(TypedDict):
    name: str
    aliases: list[str]
    formula: str
    params: dict[str, float]
    notes: str


@dataclass(frozen=True, slots=True)
class ActivationValues:
    """``y`` and its derivative ``dy`` at each ``x``."""

    name: str
    params: dict[str, float]
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    dy: NDArray[np.float64]


class WeightsInfo(TypedDict):
    file: str
    format: str
    sha256: str
    size: int
    source: str


class ModelInfo(TypedDict):
    name: str
    layers: list[int]
    activations: list[str]
    parameters: int
    dtype: str
    weights: WeightsInfo
    provenance: dict[str, Any] | None
    test_accuracy: float | None


class MnistServeError(Exception):
    """The server answered with an error (an RFC 9457 problem document).

    Attributes
    ----------
    status : int
    problem : dict
        The problem body: ``type``, ``title``, ``status``, ``detail``, ...
    request_id : str or None
        The ``X-Request-ID`` of the failed request, to quote in a report.
    """

    def __init__(
        self, status: int, problem: dict[str, Any], request_id: str | None
    ) -> None:
        self.status = status
        self.problem = problem
        self.request_id = request_id
        detail = problem.get("detail") or problem.get("error") or "error"
        super().__init__(f"{status} {problem.get('title', '')}: {detail}".strip())

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail", ""))


# --- requests and answers, shared by both clients -------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    params: Mapping[str, str] | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None


def _json_call(path: str, body: Any, params: Mapping[str, str] | None = None) -> _Call:
    return _Call(
        "POST",
        path,
        content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        headers={"content-type": "application/json"},
        params=params,
    )


def _pixels(x: ArrayLike) -> NDArray[Any]:
    array = np.asarray(x)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"images must be numbers, got dtype {array.dtype}")
    if array.dtype.kind == "f" and array.dtype != np.float32:
        # The server computes in float32; sending float32 keeps the JSON short.
        array = array.astype(np.float32)
    return np.ascontiguousarray(array)


def _predict_call(x: ArrayLike, normalize: bool, *, batch: bool) -> _Call:
    array = _pixels(x)
    image = array.shape[-2:] == (28, 28) or array.shape[-1:] == (784,)
    ndim = array.ndim - (1 if array.shape[-2:] == (28, 28) else 0)
    if not image or ndim != (2 if batch else 1):
        kind = "a batch (n, 784) or (n, 28, 28)" if batch else "(784,) or (28, 28)"
        raise ValueError(f"expected {kind}, got shape {array.shape}")
    if array.dtype == np.uint8:
        # Raw bytes: 784 per image, the cheapest encoding; always 0-255.
        return _Call(
            "POST",
            "/predict",
            content=array.tobytes(),
            headers={"content-type": "application/octet-stream"},
        )
    return _json_call("/predict", {"x": array, "normalize": normalize})


def _read_image(image: ImageSource) -> tuple[bytes, str]:
    if isinstance(image, bytes):
        data, name = image, "image"
    else:
        path = Path(image)
        data, name = path.read_bytes(), path.name
    return data, name


def _image_type(data: bytes) -> str:
    for signature, media in _IMAGE_SIGNATURES:
        if data.startswith(signature):
            return media
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"  # let the server say what it is not


def _image_call(
    image: ImageSource, preprocess: Preprocess, content_type: str | None
) -> _Call:
    data, _ = _read_image(image)
    return _Call(
        "POST",
        "/predict",
        content=data,
        headers={"content-type": content_type or _image_type(data)},
        params={"preprocess": preprocess},
    )


def _files_call(images: Sequence[ImageSource], preprocess: Preprocess) -> _Call:
    if not images:
        raise ValueError("send at least one image")
    files = []
    for image in images:
        data, name = _read_image(image)
        files.append(("file", (name, data, _image_type(data))))
    return _Call("POST", "/predict", files=files, params={"preprocess": preprocess})


def _check(response: httpx.Response) -> Any:
    if response.is_success:
        return orjson.loads(response.content)
    try:
        problem = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        problem = None
    if not isinstance(problem, dict):
        problem = {"status": response.status_code, "detail": response.text[:500]}
    raise MnistServeError(
        response.status_code, problem, response.headers.get("x-request-id")
    )


def _single(body: dict[str, Any]) -> Prediction:
    if "label" in body:
        return Prediction(
            int(body["label"]), np.asarray(body["probabilities"], dtype=np.float32)
        )
    # A uint8 body is always answered as a batch.
    return _batch(body)[0]


def _batch(body: dict[str, Any]) -> BatchPrediction:
    if "label" in body:  # one file part is answered as a single image
        return BatchPrediction(
            np.asarray([body["label"]], dtype=np.int64),
            np.asarray([body["probabilities"]], dtype=np.float32),
        )
    return BatchPrediction(
        np.asarray(body["labels"], dtype=np.int64),
        np.asarray(body["probabilities"], dtype=np.float32).reshape(-1, 10),
    )


def _activation_call(name: str, x: ArrayLike, params: Mapping[str, float]) -> _Call:
    points = np.asarray(x, dtype=np.float64).ravel()
    return _json_call(f"/activations/{name}", {"x": points, **params})


def _activation(body: dict[str, Any]) -> ActivationValues:
    return ActivationValues(
        name=body["name"],
        params=dict(body["params"]),
        x=np.asarray(body["x"], dtype=np.float64),
        y=np.asarray(body["y"], dtype=np.float64),
        dy=np.asarray(body["dy"], dtype=np.float64),
    )


_LIVE = _Call("GET", "/health/live")
_READY = _Call("GET", "/health/ready")
_MODEL = _Call("GET", "/model")
_ACTIVATIONS = _Call("GET", "/activations")


def _request_args(call: _Call) -> dict[str, Any]:
    args: dict[str, Any] = {"params": call.params, "headers": call.headers}
    if call.files is not None:
        args["files"] = call.files
    else:
        args["content"] = call.content
    return args


# --- the clients ------------------------------------------------------------------


class Client:
    """A blocking client.

    Parameters
    ----------
    base_url : str
        Where the service runs, e.g. ``http://127.0.0.1:8000``.
    timeout : float
        Seconds for each request.
    headers : mapping, optional
        Sent with every request (e.g. an ``X-Request-ID`` or auth header).
    http : httpx.Client, optional
        Use this client instead (e.g. FastAPI's ``TestClient``); it is not
        closed by :meth:`close`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self._owned = http is None
        self._http = http or httpx.Client(
            base_url=base_url, timeout=timeout, headers=dict(headers or {})
        )

    def _send(self, call: _Call) -> Any:
        return _check(self._http.request(call.method, call.path, **_request_args(call)))

    def predict(self, image: ArrayLike, *, normalize: bool = False) -> Prediction:
        """Classify one image: ``(784,)`` or ``(28, 28)``.

        Floats are pixels in [0, 1] (or 0-255 with ``normalize=True``) sent as
        JSON; a ``uint8`` array is sent as raw bytes and divided by 255.
        """
        return _single(self._send(_predict_call(image, normalize, batch=False)))

    def predict_batch(
        self, images: ArrayLike, *, normalize: bool = False
    ) -> BatchPrediction:
        """Classify a batch: ``(n, 784)`` or ``(n, 28, 28)``, floats or ``uint8``."""
        return _batch(self._send(_predict_call(images, normalize, batch=True)))

    def predict_image(
        self,
        image: ImageSource,
        *,
        preprocess: Preprocess = "auto",
        content_type: str | None = None,
    ) -> Prediction:
        """Classify an image file (PNG, JPEG, BMP, GIF, WebP): a path or its bytes."""
        return _single(self._send(_image_call(image, preprocess, content_type)))

    def predict_files(
        self, images: Sequence[ImageSource], *, preprocess: Preprocess = "auto"
    ) -> BatchPrediction:
        """Classify several image files in one multipart upload, in order."""
        return _batch(self._send(_files_call(images, preprocess)))

    def activations(self) -> list[ActivationInfo]:
        """The activation functions the service knows."""
        result: list[ActivationInfo] = self._send(_ACTIVATIONS)
        return result

    def activation(self, name: str, x: ArrayLike, **params: float) -> ActivationValues:
        """Evaluate an activation function and its derivative at ``x``."""
        return _activation(self._send(_activation_call(name, x, params)))

    def model(self) -> ModelInfo:
        """Architecture, weights (file, format, sha256, source) and accuracy."""
        result: ModelInfo = self._send(_MODEL)
        return result

    def live(self) -> bool:
        """True while the service answers."""
        return self._http.get(_LIVE.path).status_code == 200

    def ready(self) -> bool:
        """True once the model is loaded and its self-test passed."""
        return self._http.get(_READY.path).status_code == 200

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient:
    """The same methods as :class:`Client`, as coroutines (``httpx.AsyncClient``)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._owned = http is None
        self._http = http or httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=dict(headers or {})
        )

    async def _send(self, call: _Call) -> Any:
        response = await self._http.request(
            call.method, call.path, **_request_args(call)
        )
        return _check(response)

    async def predict(self, image: ArrayLike, *, normalize: bool = False) -> Prediction:
        """Classify one image: ``(784,)`` or ``(28, 28)``."""
        return _single(await self._send(_predict_call(image, normalize, batch=False)))

    async def predict_batch(
        self, images: ArrayLike, *, normalize: bool = False
    ) -> BatchPrediction:
        """Classify a batch: ``(n, 784)`` or ``(n, 28, 28)``, floats or ``uint8``."""
        return _batch(await self._send(_predict_call(images, normalize, batch=True)))

    async def predict_image(
        self,
        image: ImageSource,
        *,
        preprocess: Preprocess = "auto",
        content_type: str | None = None,
    ) -> Prediction:
        """Classify an image file (PNG, JPEG, BMP, GIF, WebP): a path or its bytes."""
        return _single(await self._send(_image_call(image, preprocess, content_type)))

    async def predict_files(
        self, images: Sequence[ImageSource], *, preprocess: Preprocess = "auto"
    ) -> BatchPrediction:
        """Classify several image files in one multipart upload, in order."""
        return _batch(await self._send(_files_call(images, preprocess)))

    async def activations(self) -> list[ActivationInfo]:
        """The activation functions the service knows."""
        result: list[ActivationInfo] = await self._send(_ACTIVATIONS)
        return result

    async def activation(
        self, name: str, x: ArrayLike, **params: float
    ) -> ActivationValues:
        """Evaluate an activation function and its derivative at ``x``."""
        return _activation(await self._send(_activation_call(name, x, params)))

    async def model(self) -> ModelInfo:
        """Architecture, weights (file, format, sha256, source) and accuracy."""
        result: ModelInfo = await self._send(_MODEL)
        return result

    async def live(self) -> bool:
        """True while the service answers."""
        return (await self._http.get(_LIVE.path)).status_code == 200

    async def ready(self) -> bool:
        """True once the model is loaded and its self-test passed."""
        return (await self._http.get(_READY.path)).status_code == 200

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
