"""Turning client input into the network's float32 batch.

JSON numbers and raw bytes become a ``(n, 784)`` float32 array in [0, 1]. The
shape of the input decides whether it is one image or a batch: ``(784,)`` and
``(28, 28)`` are one image, ``(n, 784)`` and ``(n, 28, 28)`` are ``n`` images.
"""

from __future__ import annotations

import itertools
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
    numbers_only: bool = False,
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
    numbers_only : bool
        The caller knows ``x`` holds no strings and no booleans (e.g. the JSON
        text has no quotes and no ``true``/``false`` inside ``x``): convert
        straight to float32, which is faster than letting NumPy find the type.
        Anything unexpected (nulls, objects, ragged rows, non-finite values)
        is re-checked by the general path, so the errors are the same.

    Returns
    -------
    Batch

    Raises
    ------
    InputError
        Ragged or wrong shape, non-numbers, non-finite or out-of-range values.
        Messages name the first offending position, never the value.
    """
    if numbers_only and isinstance(x, list):
        fast = _numbers_to_batch(x, normalize, max_rows)
        if fast is not None:
            return fast
    try:
        # No dtype: lets NumPy reveal strings (a '<U' dtype) and nulls or
        # objects ('O') instead of silently converting "1" to 1.0.
        array = np.asarray(x)
    except (ValueError, TypeError) as exc:
        # NumPy refuses rows of different lengths and more than 64 dimensions.
        deep = "maximum number of dimension" in str(exc)
        why = "nesting deeper than 64 levels" if deep else "ragged nesting"
        raise InputError(
            f"x must be 784 numbers, a 28x28 nested list, or a list of those; got {why}"
        ) from exc
    if array.size == 0 and array.ndim <= 1:
        raise InputError("x is empty: send 784 numbers or a 28x28 nested list")
    if array.dtype.kind not in "fiu" or (check_bools and has_bool(x)):
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
    with np.errstate(over="ignore"):
        # A float64 past float32's range becomes inf: reported just below.
        out = batch.astype(np.float32)
    return _checked(out, shape, single, normalize)


def _checked(
    out: NDArray[np.float32], shape: tuple[int, ...], single: bool, normalize: bool
) -> Batch:
    top = 255.0 if normalize else 1.0
    # Two reductions instead of four element-wise masks; min and max are NaN
    # when any value is, so the masks are only built to name a bad position.
    if out.size and out.min() >= 0 and out.max() <= top:
        if normalize:
            out /= np.float32(255.0)
        return Batch(x=out, single=single)
    finite = np.isfinite(out)
    if not finite.all():
        raise InputError(
            f"x contains a non-finite number at {_where(~finite, shape, single)}; "
            "JSON numbers must be finite"
        )
    bad = (out < 0) | (out > top)
    if bad.any():
        hint = "" if normalize else ' (send "normalize": true for 0-255 pixels)'
        raise InputError(
            f"x has a value outside [0, {top:g}] at {_where(bad, shape, single)}{hint}"
        )
    if normalize:
        out /= np.float32(255.0)
    return Batch(x=out, single=single)


def _flat_rows(x: list[object]) -> NDArray[np.float32] | None:
    # The common shapes, 784 numbers or rows of 784, read with np.fromiter:
    # ~15% faster than np.asarray, which first discovers the nesting. Rows of
    # other lengths, or nesting deeper, go to np.asarray (None here); a list
    # inside a row makes fromiter raise, which the caller handles.
    if not x:
        return None
    if type(x[0]) is not list:
        if len(x) != INPUT_SIZE:
            return None
        return np.fromiter(x, dtype=np.float32, count=INPUT_SIZE)
    rows = [row for row in x if isinstance(row, list) and len(row) == INPUT_SIZE]
    if len(rows) != len(x):
        return None
    flat = np.fromiter(
        itertools.chain.from_iterable(rows),
        dtype=np.float32,
        count=len(rows) * INPUT_SIZE,
    )
    return flat.reshape(len(rows), INPUT_SIZE)


def _numbers_to_batch(
    x: list[object], normalize: bool, max_rows: int | None
) -> Batch | None:
    """The fast path of :func:`to_batch` for lists known to hold only numbers.

    Returns None, for the general path to report, on anything unexpected.
    """
    try:
        # Overflow and nulls (NaN) are found below and re-checked by the caller.
        with np.errstate(over="ignore", invalid="ignore"):
            array = _flat_rows(x)
            if array is None:
                array = np.asarray(x, dtype=np.float32)
    except (ValueError, TypeError, OverflowError):
        return None
    shape = array.shape
    if (array.ndim == 1 and shape[0] == INPUT_SIZE) or shape == IMAGE_SHAPE:
        single = True
    elif (array.ndim == 2 and shape[1] == INPUT_SIZE and shape[0]) or (
        array.ndim == 3 and shape[1:] == IMAGE_SHAPE and shape[0]
    ):
        single = False
    else:
        return None
    out = array.reshape(-1, INPUT_SIZE)
    top = 255.0 if normalize else 1.0
    if not (out.min() >= 0 and out.max() <= top):
        return None
    if max_rows is not None and out.shape[0] > max_rows:
        raise BatchTooLargeError(
            f"batch of {out.shape[0]} images is over the limit of {max_rows}"
        )
    if normalize:
        out /= np.float32(255.0)
    return Batch(x=out, single=single)


def has_bool(x: object) -> bool:
    """True when nested lists ``x`` hold a bool (NumPy would read it as 0 or 1)."""
    # NumPy turns [1, true] into [1, 1]; JSON booleans are not pixel values.
    # map(type, ...) runs in C: about 10 us per 784 values.
    if isinstance(x, list):
        if x and isinstance(x[0], list):
            return any(has_bool(row) for row in x)
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
