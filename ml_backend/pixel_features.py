"""Per-pixel grey-level features for pixel classifiers (interactive refinement, the fast learner).

ilastik-style multiscale filters on the image normalised to its 0.5-99.5 percentile range:
the grey level smoothed at 1 px, then per scale the local mean and local standard deviation
(texture), and the gradient magnitude at 2 px. Filters run at full resolution; only the
grid ``[::stride, ::stride]`` is kept.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ml_backend.normalise import percentile_range


def grey_features(image: np.ndarray, stride: int = 1, scales: tuple[float, ...] = (2.5, 6.0)) -> np.ndarray:
    """(2 + 2 * len(scales), h, w) float32 features of a raw 2-D image on the grid ``[::stride, ::stride]``.

    Channels: smoothed grey (sigma 1 px); for each scale its Gaussian mean and local standard
    deviation; gradient magnitude (sigma 2 px).
    """
    grey = percentile_range(image).apply(image)
    grid = (slice(None, None, stride), slice(None, None, stride))
    fine = ndimage.gaussian_filter(grey, 1.0)
    out = [fine[grid]]
    for sigma in scales:
        mean = ndimage.gaussian_filter(fine, sigma)
        square = ndimage.gaussian_filter(fine * fine, sigma)
        out.append(mean[grid])
        out.append(np.sqrt(np.maximum(square - mean * mean, 0.0))[grid])
    out.append(ndimage.gaussian_gradient_magnitude(grey, 2.0)[grid])
    return np.stack(out).astype(np.float32)
