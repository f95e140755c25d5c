"""The network's one validated input: a float32 ``(n, 784)`` batch in [0, 1].

Every wire format (JSON numbers, raw bytes, decoded images, Open Inference
Protocol tensors) ends up here, through one of three constructors that hold
every rule once:

* :meth:`Batch.from_numbers`: numbers, as nested lists or an array, scaled
  according to :class:`Scale`;
* :meth:`Batch.from_bytes`: raw ``uint8`` pixels, ``n * 784`` bytes;
* :meth:`Batch.from_images`: images already normalised by :mod:`core.images`.

The shape decides single or batch: ``(784,)`` and ``(28, 28)`` are one image,
``(n, 784)`` and ``(n, 28, 28)`` are ``n`` images. Messages name the first
offending position, never the offending value (it may be huge, or the very
thing that was refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from core.errors import BatchTooLargeError, InputError
from core.network import IMAGE_SHAPE, INPUT_SIZE

FloatArray = NDArray[np.float32]


class Scale(Enum):
    """What the numbers are, and so their range and how they become [0, 1]."""

    UNIT = "[0, 1]"
    """Already network input (the book's ``load_mnist(normalize=True)``)."""
    PIXELS = "[0, 255]"
    """Gray levels, any real number in range, divided by 255."""
    UINT8 = "integers in [0, 255]"
    """Bytes' values: integers only, divided by 255."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Network input and whether the client sent a single image.

    Attributes
    ----------
    x : ndarray of shape (n, 784), float32
        Values in [0, 1], C-contiguous.
    single : bool
        True for a ``(784,)`` or ``(28, 28)`` input: answer with one label.
    """

    x: FloatArray
    single: bool

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])

    @classmethod
    def from_numbers(
        cls,
        x: object,
        *,
        scale: Scale = Scale.UNIT,
        max_rows: int,
        rows: int | None = None,
        name: str = "x",
    ) -> Batch:
        """Validate numbers and shape them into the network's input.

        Parameters
        ----------
        x : array-like
            Nested lists of ints and floats, or a numeric ndarray (an object
            array is inspected to name what is not a number).
        scale : Scale
            Range of the values and how they map to [0, 1].
        max_rows : int
            More images than this raise ``BatchTooLargeError``.
        rows : int or None
            The number of images the sender declared (a tensor's shape): the
            values, flat or nested, must be exactly ``rows * 784`` and always
            form a batch. None: the shape of ``x`` decides.
        name : str
            How messages call the input (``x``, ``input``).

        Raises
        ------
        InputError
            Ragged or wrong shape, non-numbers, non-finite or out-of-range values.
        BatchTooLargeError
            More than ``max_rows`` images.
        """
        if rows is not None and rows > max_rows:
            raise _too_many(rows, max_rows)
        array = _as_numbers(x, name)
        shape = array.shape
        if rows is not None:
            if array.size != rows * INPUT_SIZE:
                raise _invalid(
                    name,
                    f"{name} has {array.size} values; {rows} images need "
                    f"{rows * INPUT_SIZE}",
                )
            single, n = False, rows
        elif (array.ndim == 1 and shape[0] == INPUT_SIZE) or shape == IMAGE_SHAPE:
            single, n = True, 1
        elif (array.ndim == 2 and shape[1] == INPUT_SIZE) or (
            array.ndim == 3 and shape[1:] == IMAGE_SHAPE
        ):
            single, n = False, shape[0]
        elif array.size == 0 and array.ndim == 1:
            raise _invalid(name, f"{name} is empty: send 784 numbers or a 28x28 list")
        else:
            raise _invalid(
                name,
                f"{name} has shape {list(shape)}; expected [784], [28, 28], "
                "[n, 784] or [n, 28, 28]",
            )
        if n == 0:
            raise _invalid(name, f"{name} is an empty batch: send at least one image")
        if n > max_rows:
            raise _too_many(n, max_rows)
        return cls(_scaled(array, shape, scale, name).reshape(n, INPUT_SIZE), single)

    @classmethod
    def from_bytes(cls, data: bytes, *, max_rows: int, name: str = "body") -> Batch:
        """Raw ``uint8`` pixels, ``n * 784`` bytes row-major, as a batch.

        Raises
        ------
        InputError
            Empty, or not a multiple of 784 bytes.
        BatchTooLargeError
            More than ``max_rows`` images.
        """
        if not data or len(data) % INPUT_SIZE:
            raise InputError(
                f"{name} must be n * {INPUT_SIZE} bytes of uint8 pixels, got "
                f"{len(data)} bytes"
            )
        n = len(data) // INPUT_SIZE
        if n > max_rows:
            raise _too_many(n, max_rows)
        x = np.frombuffer(data, dtype=np.uint8).reshape(n, INPUT_SIZE)
        return cls(_from_uint8(x), single=False)

    @classmethod
    def from_images(
        cls, images: Sequence[FloatArray] | FloatArray, *, single: bool, max_rows: int
    ) -> Batch:
        """Images from :mod:`core.images`: each 784 (or 28x28) float32 in [0, 1].

        Raises
        ------
        BatchTooLargeError
            More than ``max_rows`` images.
        """
        if len(images) > max_rows:
            raise _too_many(len(images), max_rows)
        stacked = images if isinstance(images, np.ndarray) else np.stack(images)
        x = stacked.astype(np.float32, copy=False).reshape(-1, INPUT_SIZE)
        return cls(x, single=single and len(images) == 1)


def _invalid(name: str, message: str) -> InputError:
    return InputError(message, loc=(name,))


def _too_many(n: int, max_rows: int) -> BatchTooLargeError:
    return BatchTooLargeError(f"batch of {n} images is over the limit of {max_rows}")


def _from_uint8(x: NDArray[np.uint8]) -> FloatArray:
    # Pixel bytes from any transport take this one conversion, so that the
    # same pixels give bit-for-bit the same input (and answer) everywhere.
    out = x.astype(np.float32)
    out /= np.float32(255.0)
    return out


def _as_numbers(x: object, name: str) -> NDArray[np.generic]:
    """``x`` as a numeric ndarray, or an InputError saying what else it holds."""
    if isinstance(x, np.ndarray):
        array = x
    else:
        try:
            # No dtype: NumPy reveals strings ('<U') and nulls or objects ('O')
            # instead of converting "1" to 1.0.
            array = np.asarray(x)
        except (ValueError, TypeError) as exc:
            # Rows of different lengths, or more than NumPy's 64 dimensions.
            deep = "maximum number of dimension" in str(exc)
            why = "nested deeper than 64 levels" if deep else "ragged nesting"
            raise _invalid(
                name,
                f"{name} must be 784 numbers, a 28x28 nested list, or a list of "
                f"those; got {why}",
            ) from exc
        if array.dtype.kind in "iuf" and _has_bool(x):
            raise _invalid(name, f"{name} must hold only numbers, found booleans")
    if array.dtype.kind not in "iuf":
        raise _invalid(name, f"{name} must hold only numbers, found {_kinds(array)}")
    return array


def _has_bool(x: object) -> bool:
    # NumPy turns [1, true] into [1, 1]; JSON booleans are not pixel values.
    if isinstance(x, list):
        if x and isinstance(x[0], list):
            return any(_has_bool(row) for row in x)
        return bool in set(map(type, x))
    return isinstance(x, bool)


def _kinds(array: NDArray[np.generic]) -> str:
    if array.dtype.kind in "US":
        return "strings"
    if array.dtype.kind == "b":
        return "booleans"
    if array.dtype.kind == "O":
        found = {type(v) for v in array.ravel()[:100_000]}
        if bool in found:
            return "booleans"
        if str in found:
            return "strings"
        return "nulls or objects"
    return str(array.dtype)


def _scaled(
    array: NDArray[np.generic], shape: tuple[int, ...], scale: Scale, name: str
) -> FloatArray:
    if scale is Scale.UINT8 and array.dtype.kind == "f":
        raise _invalid(name, f"{name} must hold integers in [0, 255] (uint8 pixels)")
    with np.errstate(over="ignore"):  # past float32's range: inf, refused below
        out = np.asarray(array, dtype=np.float32, order="C")
    top = 1.0 if scale is Scale.UNIT else 255.0
    # Two reductions instead of four element-wise masks; min and max are NaN
    # when any value is, so the masks are only built to name a position.
    if not (out.size and out.min() >= 0 and out.max() <= top):
        finite = np.isfinite(out)
        if not finite.all():
            raise _invalid(
                name,
                f"{name} contains a non-finite number at "
                f"{_where(~finite, shape, name)}; numbers must be finite",
            )
        bad = (out < 0) | (out > top)
        raise _invalid(
            name,
            f"{name} has a value outside [0, {top:g}] at {_where(bad, shape, name)}",
        )
    if scale is not Scale.UNIT:
        out = np.true_divide(out, np.float32(255.0))
    return out


def _where(mask: NDArray[np.bool_], shape: tuple[int, ...], name: str) -> str:
    flat = int(np.argmax(mask))
    index = np.unravel_index(flat, shape) if shape else ()
    return name + "".join(f"[{int(i)}]" for i in index)
