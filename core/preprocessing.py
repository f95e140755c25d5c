"""Turning client input into the network's float32 batch.

JSON numbers and raw bytes become a ``(n, 784)`` float32 array in [0, 1]. The
shape of the input decides whether it is one image or a batch: ``(784,)`` and
``(28, 28)`` are one image, ``(n, 784)`` and ``(n, 28, 28)`` are ``n`` images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core.errors import BatchTooLargeError, InputError
from core.network import IMAGE_SHAPE, INPUT_SIZE


@dataclass(frozen=True, slots=True)
class Batch:
    """Network input and whether the client sent a single image.

    Attributes
    ----------
    x : ndarray of shape (n, 784), float32
        Values in [0, 1].
    single : bool
        True for a ``(784,)`` or ``(28, 28)`` input: answer with one label.
    """

    x: NDArray[np.float32]
    single: bool

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])


def _first_bad(mask: NDArray[np.bool_], shape: tuple[int, ...]) -> tuple[int, ...]:
    flat = int(np.argmax(mask))
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def to_batch(
    x: object,
    *,
    normalize: bool = False,
    max_rows: int | None = None,
    check_bools: bool = True,
) -> Batch:
    """Validate numbers and shape them into the network's input.

    Parameters
    ----------
    x : array-like
        ``(784,)``, ``(28, 28)``, ``(n, 784)`` or ``(n, 28, 28)`` numbers: a
        NumPy array or nested lists of ints and floats (not bools or strings).
    normalize : bool
        False: values are already in [0, 1]. True: values are raw pixels in
        [0, 255] and are divided by 255.
    max_rows : int or None
        Refuse batches with more rows (``BatchTooLargeError``).
    check_bools : bool
        Look for booleans among the numbers (NumPy would take them as 0/1).
        A caller that knows there are none (e.g. the JSON text holds no
        ``true``/``false``) skips this per-element scan.

    Returns
    -------
    Batch

    Raises
    ------
    InputError
        Ragged or wrong shape, non-numbers, non-finite or out-of-range values.
        Messages name the first offending position, never the value.
    """
    try:
        # No dtype: lets NumPy reveal strings (a '<U' dtype) and nulls or
        # objects ('O') instead of silently converting "1" to 1.0.
        array = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise InputError(
            "x must be 784 numbers, a 28x28 nested list, or a list of those; "
            "got ragged nesting (rows of different lengths)"
        ) from exc
    if array.size == 0 and array.ndim <= 1:
        raise InputError("x is empty: send 784 numbers or a 28x28 nested list")
    if array.dtype.kind not in "fiu" or (check_bools and _has_bool(x)):
        raise InputError(f"x must hold only numbers, found {_kind_name(array.dtype)}")
    shape = array.shape
    if (array.ndim == 1 and shape[0] == INPUT_SIZE) or shape == IMAGE_SHAPE:
        single = True
        batch = array.reshape(1, INPUT_SIZE)
    elif (array.ndim == 2 and shape[1] == INPUT_SIZE) or (
        array.ndim == 3 and shape[1:] == IMAGE_SHAPE
    ):
        single = False
        batch = array.reshape(shape[0], INPUT_SIZE)
    else:
        raise InputError(
            f"x has shape {list(shape)}; expected [784], [28, 28], [n, 784] or "
            f"[n, 28, 28]"
        )
    if batch.shape[0] == 0:
        raise InputError("x is an empty batch: send at least one image")
    if max_rows is not None and batch.shape[0] > max_rows:
        raise BatchTooLargeError(
            f"batch of {batch.shape[0]} images is over the limit of {max_rows}"
        )
    out = batch.astype(np.float32)
    finite = np.isfinite(out)
    if not finite.all():
        raise InputError(
            f"x contains a non-finite number at {_where(~finite, shape, single)}; "
            "JSON numbers must be finite"
        )
    top = 255.0 if normalize else 1.0
    bad = (out < 0) | (out > top)
    if bad.any():
        hint = "" if normalize else ' (send "normalize": true for 0-255 pixels)'
        raise InputError(
            f"x has a value outside [0, {top:g}] at {_where(bad, shape, single)}{hint}"
        )
    if normalize:
        out /= np.float32(255.0)
    return Batch(x=out, single=single)


def _has_bool(x: object) -> bool:
    # NumPy turns [1, true] into [1, 1]; JSON booleans are not pixel values.
    # map(type, ...) runs in C: about 10 us per 784 values.
    if isinstance(x, list):
        if x and isinstance(x[0], list):
            return any(_has_bool(row) for row in x)
        return bool in set(map(type, x))
    return isinstance(x, bool)


def _where(mask: NDArray[np.bool_], shape: tuple[int, ...], single: bool) -> str:
    index = _first_bad(mask.reshape(shape), shape)
    return "x" + "".join(f"[{i}]" for i in index)


def _kind_name(dtype: np.dtype[np.generic]) -> str:
    names = {"U": "strings", "S": "strings", "b": "booleans", "O": "nulls or objects"}
    return names.get(dtype.kind, "booleans" if dtype.kind in "iuf" else f"{dtype}")


def from_uint8(data: bytes, *, max_rows: int | None = None) -> Batch:
    """Raw ``uint8`` pixels, ``n * 784`` bytes row-major, as a batch in [0, 1].

    Raises
    ------
    InputError
        Empty or not a multiple of 784 bytes.
    BatchTooLargeError
        More than ``max_rows`` images.
    """
    if not data or len(data) % INPUT_SIZE:
        raise InputError(
            f"octet-stream body must be n * {INPUT_SIZE} bytes of uint8 pixels, "
            f"got {len(data)} bytes"
        )
    rows = len(data) // INPUT_SIZE
    if max_rows is not None and rows > max_rows:
        raise BatchTooLargeError(
            f"batch of {rows} images is over the limit of {max_rows}"
        )
    out = (
        np.frombuffer(data, dtype=np.uint8).reshape(rows, INPUT_SIZE).astype(np.float32)
    )
    out /= np.float32(255.0)
    return Batch(x=out, single=False)
