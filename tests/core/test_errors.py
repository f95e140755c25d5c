"""Tests of core.errors: one hierarchy, messages from the values, no HTTP."""

from __future__ import annotations

import inspect

import pytest

from core import errors
from core.errors import (
    BatchTooLargeError,
    CoreError,
    InputError,
    LimitExceededError,
    UnknownActivationError,
    WeightsError,
)

CLASSES = [
    obj
    for _, obj in inspect.getmembers(errors, inspect.isclass)
    if obj.__module__ == errors.__name__
]


def test_every_class_is_a_core_error_named_error() -> None:
    assert len(CLASSES) >= 10
    for cls in CLASSES:
        assert issubclass(cls, CoreError)
        assert cls.__name__.endswith("Error")


def test_no_http_status_anywhere() -> None:
    # Mapping errors to status codes is app/errors.py's job.
    for cls in CLASSES:
        names = {n.lower() for n in vars(cls)}
        assert not names & {"status", "status_code", "code", "http_status"}


def test_branches() -> None:
    assert issubclass(BatchTooLargeError, LimitExceededError)
    assert issubclass(LimitExceededError, InputError)
    assert not issubclass(WeightsError, InputError)


def test_message_and_repr() -> None:
    error = WeightsError("W1 holds NaN or infinite values")
    assert error.message == str(error) == "W1 holds NaN or infinite values"
    assert repr(error) == "WeightsError('W1 holds NaN or infinite values')"


@pytest.mark.parametrize(
    ("length", "clipped"), [(64, False), (65, True), (10**5, True)]
)
def test_unknown_activation_clips_a_clients_name(length: int, clipped: bool) -> None:
    name = "x" * length
    error = UnknownActivationError(name, ["relu", "sigmoid"])
    assert error.name == name
    assert error.valid == ["relu", "sigmoid"]
    assert error.message.endswith("valid names: relu, sigmoid")
    assert (f"({length - 64} more)" in error.message) is clipped
    assert len(error.message) < 200
