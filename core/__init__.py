"""NumPy core of mnist-serve: the book's network, its weights, activations, data.

No FastAPI or Pydantic here: this package is usable from notebooks, scripts and
benchmarks without the HTTP layer.
"""

from core.errors import CoreError, InputError, WeightsError
from core.network import IMAGE_SIDE, INPUT_SIZE, NUM_CLASSES, Network
from core.weights import load_network, load_weights, save_network

__all__ = [
    "IMAGE_SIDE",
    "INPUT_SIZE",
    "NUM_CLASSES",
    "CoreError",
    "InputError",
    "Network",
    "WeightsError",
    "load_network",
    "load_weights",
    "save_network",
]
