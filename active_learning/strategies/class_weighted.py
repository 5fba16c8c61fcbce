"""Class-weighted entropy: uncertainty where the model predicts a rare phase counts more.

Oxide and olivine cover a few % of a basalt; a tile that is uncertain about them teaches more
than one uncertain about groundmass. Each pixel's normalised entropy is weighted by the weight
of its predicted class, ``w_c = 1 / sqrt(share_c)`` normalised to mean 1 over the classes with
a share (``share_c``: the class's share of the predicted pixels over the pool, or of the task
itself when no pool shares are given), and the task score is the weighted mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from active_learning.strategies.base import Scorer
from ml_backend.segmenters.base import Segmenter
from ml_backend.uncertainty import entropy_map


def rarity_weights(shares: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """``1 / sqrt(max(share, floor))`` normalised to mean 1 over the classes with a positive share."""
    shares = np.asarray(shares, np.float64)
    weights = 1.0 / np.sqrt(np.maximum(shares, floor))
    present = shares > 0
    return weights / (weights[present].mean() if present.any() else weights.mean())


def class_weighted_entropy(probs: np.ndarray, weights: np.ndarray) -> float:
    """Weighted mean of the normalised entropy, each pixel weighted by its predicted class's weight.

    Raises:
        ValueError: if there is not one weight per class.
    """
    weights = np.asarray(weights, np.float64)
    if weights.shape != (probs.shape[0],):
        raise ValueError(f"need {probs.shape[0]} class weights, got shape {weights.shape}")
    w = weights[np.argmax(probs, axis=0)]
    return float((w * entropy_map(probs)).sum() / max(w.sum(), 1e-12))


class ClassWeightedEntropyScorer(Scorer):
    """Entropy weighted by the rarity of the predicted class.

    Args:
        shares: Predicted class shares over the project's tasks (None: each task's own shares).
    """

    name = "class-weighted-entropy"

    def __init__(self, shares: Sequence[float] | None = None) -> None:
        self.shares = None if shares is None else np.asarray(shares, np.float64)

    def score(self, image: np.ndarray, segmenter: Segmenter, probs: np.ndarray | None = None) -> float:
        """:func:`class_weighted_entropy` with :func:`rarity_weights`."""
        probs = self.probabilities(image, segmenter, probs)
        shares = self.shares
        if shares is None:
            shares = np.bincount(np.argmax(probs, axis=0).ravel(), minlength=probs.shape[0]) / probs[0].size
        return class_weighted_entropy(probs, rarity_weights(shares))
