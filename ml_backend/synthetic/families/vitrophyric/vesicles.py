"""Epoxy-filled vesicles in the glass, mostly fine ones (log-uniform sizes, 2-200 µm)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ml_backend.synthetic.families.vitrophyric.canvas import Canvas
from ml_backend.synthetic.groundmass import log_uniform

VESICLE_UM = (2.0, 200.0)
MIN_GLASS = 0.1  # vesicles never leave less groundmass than this share of the field
_MAX_VESICLES = 4000


def add_vesicles(canvas: Canvas, fraction: float, pixel_size_um: float, roles: dict[str, int], epoxy_eta: float,
                 rng: np.random.Generator) -> dict[str, float]:  # fmt: skip
    """Paint round to slightly oval vesicles into the groundmass.

    A vesicle may end against a crystal face or take the glass of an embayment at its
    margin, but no crystal (outline) lies in its middle: a vesicle whose central square
    meets a crystal is moved (up to 3 tries) or dropped.

    Returns:
        Realised parameters: vesicle count and painted share.
    """
    h, w = canvas.shape
    glass = canvas.classes == roles["Groundmass"]
    target = min(fraction, max(0.0, float(glass.mean()) - MIN_GLASS)) * h * w
    hi = min(VESICLE_UM[1] / pixel_size_um, 0.4 * min(h, w))
    lo = min(max(VESICLE_UM[0] / pixel_size_um, 1.5), hi)
    image = Image.new("1", (w, h), 0)
    pen = ImageDraw.Draw(image)
    count, total = 0, 0.0
    while total < target and count < _MAX_VESICLES:
        d = float(log_uniform(rng, (lo, hi)))
        total += np.pi / 4 * d * d
        stretch = rng.uniform(1.0, 1.3, 2)
        for _ in range(3):
            row, col = rng.uniform((0.0, 0.0), (h, w))
            core = 0.35 * d
            middle = canvas.claimed[
                max(int(row - core), 0) : int(row + core) + 1, max(int(col - core), 0) : int(col + core) + 1
            ]
            if not middle.any():
                box = [
                    col - d / 2 * stretch[1],
                    row - d / 2 * stretch[0],
                    col + d / 2 * stretch[1],
                    row + d / 2 * stretch[0],
                ]
                pen.ellipse(box, fill=1)
                count += 1
                break
    vesicle = np.array(image, dtype=bool) & glass
    canvas.classes[vesicle] = roles["Epoxy"]
    canvas.eta[vesicle] = epoxy_eta
    return {"vesicle_count": float(count), "vesicle_share": float(vesicle.mean())}
