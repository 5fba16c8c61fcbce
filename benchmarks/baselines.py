"""Reference segmenters that scrAiber's own methods must beat.

:func:`grey_gmm_segment` is the simplest unsupervised method worth the name: a Gaussian
mixture on the grey level alone, no spatial context, no naming (labels are cluster
indices, darkest first, so only Hungarian-matched scores are meaningful).
"""

from __future__ import annotations

import numpy as np
from sklearn.mixture import GaussianMixture

from ml_backend.normalise import percentile_range

_FIT_PIXELS = 50_000  # pixels drawn to fit the mixture; every pixel is then labelled


def grey_gmm_segment(image: np.ndarray, n_classes: int = 6, seed: int = 0) -> np.ndarray:
    """uint8 (H, W) cluster indices (0 = darkest) of a plain Gaussian mixture on the grey level.

    The grey level is normalised by the 0.5-99.5 percentile range; ``n_classes`` components
    are fitted on a uniform sample of at most 50 000 pixels.

    Raises:
        ValueError: for a non-2-D image or ``n_classes`` outside 1-255.
    """
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {image.shape}")
    if not 1 <= n_classes <= 255:
        raise ValueError(f"n_classes must be 1-255, got {n_classes}")
    grey = percentile_range(image).apply(image).reshape(-1, 1).astype(np.float64)
    rng = np.random.default_rng(seed)
    sample = grey[rng.choice(len(grey), min(_FIT_PIXELS, len(grey)), replace=False)]
    gmm = GaussianMixture(n_classes, random_state=seed).fit(sample)
    rank = np.argsort(np.argsort(gmm.means_[:, 0]))
    return rank[gmm.predict(grey)].reshape(image.shape).astype(np.uint8)
