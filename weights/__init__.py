"""The models shipped with mnist-serve: a model repository installed as package data.

Triton's layout (see ``app.repository``): ``<name>/<version>/weights.pkl`` (or
``.npz``), ``<name>/model.json``, and the training record of each file beside
it (``weights.json``). ``pip install .`` (or the wheel) carries this folder, so
the service finds its models wherever it is started from. Only the HTTP layer
and the tools ask for it; ``core`` is always handed a path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "mnist"


def shipped() -> Path:
    """The shipped repository's directory (a real folder: wheels install unzipped)."""
    return Path(str(resources.files(__name__)))


def shipped_file(model: str = DEFAULT_MODEL, version: int = 1) -> Path:
    """The weights file of one shipped model version (``.pkl`` or ``.npz``)."""
    directory = shipped() / model / str(version)
    for name in ("weights.pkl", "weights.npz"):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"no shipped weights for {model} version {version}")
