"""Entropy scoring: mean normalised per-pixel Shannon entropy of the class probabilities."""

from __future__ import annotations

import numpy as np

from active_learning.strategies.base import Scorer
from ml_backend.segmenters.base import Segmenter
from ml_backend.uncertainty import entropy_map


class EntropyScorer(Scorer):
    """0 when the model is certain everywhere, 1 when every pixel is uniform over all classes."""

    name = "entropy"

    def score(self, image: np.ndarray, segmenter: Segmenter, probs: np.ndarray | None = None) -> float:
        """Mean of :func:`ml_backend.uncertainty.entropy_map`."""
        return float(entropy_map(self.probabilities(image, segmenter, probs)).mean())
