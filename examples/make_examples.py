"""Write the request bodies used by the README's curl examples.

The digits are drawn here with Pillow (black strokes on white paper, like a
scan), not taken from MNIST. Run from the project root:
``python examples/make_examples.py``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from core.images import image_to_input

HERE = Path(__file__).resolve().parent


def draw(lines: list[tuple[tuple[int, int], ...]], width: int = 22) -> bytes:
    """A 280x280 white canvas with black strokes through the given points, as PNG."""
    canvas = Image.new("L", (280, 280), 255)
    pen = ImageDraw.Draw(canvas)
    for points in lines:
        pen.line(points, fill=0, width=width, joint="curve")
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()


def main() -> None:
    one_png = draw([((150, 40), (130, 240))])
    seven_png = draw([((60, 50), (220, 50), (120, 240))])
    one = image_to_input(one_png, "mnist")
    seven = image_to_input(seven_png, "mnist")
    pixels = np.rint(one * 255).astype(np.uint8)
    (HERE / "one.png").write_bytes(one_png)
    (HERE / "seven.png").write_bytes(seven_png)
    rounded = [round(float(v), 4) for v in one]
    (HERE / "one.json").write_text(json.dumps({"x": rounded}))
    square = [rounded[r * 28 : (r + 1) * 28] for r in range(28)]
    (HERE / "one_28x28.json").write_text(json.dumps({"x": square}))
    (HERE / "one_pixels.json").write_text(
        json.dumps({"x": pixels.tolist(), "normalize": True})
    )
    batch = [rounded, [round(float(v), 4) for v in seven]]
    (HERE / "batch.json").write_text(json.dumps({"x": batch}))
    both = np.rint(np.stack([one, seven]) * 255).astype(np.uint8)
    (HERE / "batch.u8").write_bytes(both.tobytes())


if __name__ == "__main__":
    main()
