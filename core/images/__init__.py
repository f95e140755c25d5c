"""Image uploads to network inputs: decoding and MNIST-style normalisation.

A network trained on MNIST only works on inputs normalised the way MNIST was
(LeCun et al.): white ink on black, the digit's bounding box fitted into 20x20
keeping its aspect ratio (anti-aliased), and pasted into 28x28 so that its
centre of mass sits at the centre. People send digits
as they have them (scans, phone photos, tight crops, thumbnails, canvas
exports with a transparent background), so the work is split by concept:

* :mod:`~core.images.decode`: :func:`decode_image` turns PNG, JPEG, BMP, GIF
  (first frame) or WebP bytes into a grayscale image "as the user sees it",
  alpha composited onto a suitable background, after checking the byte and
  pixel limits from the header (before any pixel is decoded);
* :mod:`~core.images.paper`: the paper's light (an envelope fitted by
  asymmetric least squares, so gradients and vignettes cancel and the share
  of ink does not matter), the ink's polarity and the noise;
* :mod:`~core.images.ink`: how far the ink stands out, its coverage and the
  digit's box; a refusal only when nothing stands out under either polarity;
* :mod:`~core.images.fit` and :mod:`~core.images.strokes`: the box fitted
  into 20x20, the centre of mass at (14, 14), strokes brought to MNIST's
  width;
* :mod:`~core.images.measures`: what MNIST's own digits measure;
* :mod:`~core.images.pipeline`: the modes, the ``auto`` decision
  (:func:`is_mnist_like`), :func:`to_mnist`, :func:`image_to_input` and
  :func:`images_to_rows` for batches.

Where MNIST differs from naive preprocessing (and why it matters): the
*longest* side of the ink's bounding box becomes 20 pixels (not both sides,
not the whole image), and the digit is then placed by its centre of mass, not
by its bounding box. MNIST's translation was by whole pixels, which puts the
centre of mass at pixel index 14.0 on average (measured on the test set: mean
13.99 rows, 14.01 columns, spread as a +-0.5 rounding), not at the geometric
centre 13.5; this module places it at 14.0 exactly, with a sub-pixel shift.
"""

from __future__ import annotations

from core.images.decode import DEFAULT_LIMITS, ImageLimits, decode_image
from core.images.measures import FIT_SIDE, MNIST_CENTRE, MNIST_SIDE
from core.images.pipeline import (
    PREPROCESS_MODES,
    Preprocess,
    image_to_input,
    images_to_rows,
    is_mnist_like,
    normalize_mnist,
    to_mnist,
)

__all__ = [
    "DEFAULT_LIMITS",
    "FIT_SIDE",
    "MNIST_CENTRE",
    "MNIST_SIDE",
    "PREPROCESS_MODES",
    "ImageLimits",
    "Preprocess",
    "decode_image",
    "image_to_input",
    "images_to_rows",
    "is_mnist_like",
    "normalize_mnist",
    "to_mnist",
]
