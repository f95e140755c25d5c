"""The single error hierarchy of ``core``.

Errors carry a message built from the offending values and no HTTP status:
mapping them to status codes is the HTTP layer's job (``app/errors.py``).
"""

from __future__ import annotations


class CoreError(Exception):
    """Base class of every error raised by ``core``."""

    def __init__(self, message: str, *, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        # Where in the input the problem is (e.g. ("x",)), for a structured
        # error entry; the message says it in words either way.
        self.loc = loc

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class WeightsError(CoreError):
    """A weight file is missing, unsafe, malformed or does not fit the network."""


class InputError(CoreError):
    """Input values are well-formed but invalid (shape, range, non-finite)."""


class LimitExceededError(InputError):
    """Input is larger than a configured limit (batch rows, points, pixels, parts)."""


class BatchTooLargeError(LimitExceededError):
    """More rows than the configured batch limit."""


class ImageDecodeError(CoreError):
    """Bytes that claim to be an image cannot be decoded."""


class UnsupportedImageError(CoreError):
    """An image format that is recognised but not accepted."""


class EmptyImageError(InputError):
    """An image with no ink: nothing to classify."""


class BatchImageError(InputError):
    """Some images of a batch cannot be used: every one is named, by index.

    Attributes
    ----------
    failures : list of (int, str)
        The index of each unusable image in the batch and why it cannot be
        used, in batch order.
    causes : list of CoreError
        The error of each failure, in the same order (its class says what
        kind of problem it is: undecodable, too large, no ink, ...).
    size : int
        How many images the batch held.
    """

    def __init__(self, causes: list[tuple[int, CoreError]], size: int) -> None:
        self.failures = [(index, error.message) for index, error in causes]
        self.causes = [error for _, error in causes]
        self.size = size
        shown = "; ".join(f"image {i}: {message}" for i, message in self.failures[:5])
        more = len(self.failures) - 5
        super().__init__(
            f"{len(self.failures)} of {size} images cannot be used ({shown}"
            + (f"; and {more} more" if more > 0 else "")
            + "); send the batch again without them, or fix them"
        )


class DataError(CoreError):
    """A data file (MNIST IDX, training CSV) is missing or malformed."""


class UnknownActivationError(CoreError):
    """An activation name that is not in the registry."""

    def __init__(self, name: str, valid: list[str]) -> None:
        # The name comes from a client: a long one is not repeated in full.
        shown = name if len(name) <= 64 else f"{name[:64]}… ({len(name) - 64} more)"
        super().__init__(
            f"unknown activation {shown!r}; valid names: {', '.join(valid)}"
        )
        self.name = name
        self.valid = valid
