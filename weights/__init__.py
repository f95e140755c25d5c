"""The weights shipped with mnist-serve, installed as package data.

``pip install .`` (or the wheel) carries this folder, so the service finds its
default network wherever it is started from. Only the HTTP layer and the
tools ask for it; ``core`` is always handed a path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_FILE = "sample_weight.pkl"


def shipped(name: str = DEFAULT_FILE) -> Path:
    """Path of a file shipped in this package (a real file: wheels install unzipped)."""
    return Path(str(resources.files(__name__).joinpath(name)))
