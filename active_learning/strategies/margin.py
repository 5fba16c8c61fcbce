"""Margin scoring: how close the two most likely classes are, averaged over the image."""

from __future__ import annotations

import numpy as np

from active_learning.strategies.base import Scorer
from ml_backend.segmenters.base import Segmenter
from ml_backend.uncertainty import margin_map


class MarginScorer(Scorer):
    """Mean of ``1 - (p_best - p_second)``: 0 for one-hot pixels, 1 for ties between the top two."""

    name = "margin"

    def score(self, image: np.ndarray, segmenter: Segmenter, probs: np.ndarray | None = None) -> float:
        """Mean of :func:`ml_backend.uncertainty.margin_map`."""
        return float(margin_map(self.probabilities(image, segmenter, probs)).mean())
