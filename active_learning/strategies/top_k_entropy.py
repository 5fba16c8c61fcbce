"""Top-k % entropy: the mean entropy of a task's most uncertain pixels, not of all of them.

A tile's mean entropy is dominated by the pixels the model is sure of (the groundmass), so
tile scores barely differ (mean normalised entropy 0.27 +/- 0.03 in the old benchmark). The
mean over the ``fraction`` most uncertain pixels says how uncertain the uncertain part of the
tile is, whatever its size.
"""

from __future__ import annotations

import numpy as np

from active_learning.strategies.base import Scorer
from ml_backend.segmenters.base import Segmenter
from ml_backend.uncertainty import entropy_map


def top_fraction_mean(values: np.ndarray, fraction: float) -> float:
    """Mean of the largest ``ceil(fraction * N)`` values (at least one).

    Raises:
        ValueError: for a fraction outside (0, 1] or no values.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    flat = np.asarray(values, np.float64).ravel()
    if not flat.size:
        raise ValueError("no values to score")
    k = max(1, int(np.ceil(fraction * flat.size)))
    return float(np.partition(flat, flat.size - k)[flat.size - k :].mean())


class TopFractionEntropyScorer(Scorer):
    """Mean normalised entropy of the ``fraction`` most uncertain pixels (default 10 %)."""

    name = "top-k-entropy"

    def __init__(self, fraction: float = 0.1) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
        self.fraction = float(fraction)

    def score(self, image: np.ndarray, segmenter: Segmenter, probs: np.ndarray | None = None) -> float:
        """:func:`top_fraction_mean` of :func:`ml_backend.uncertainty.entropy_map`."""
        return top_fraction_mean(entropy_map(self.probabilities(image, segmenter, probs)), self.fraction)
