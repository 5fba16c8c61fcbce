"""Cost-aware scoring (CEREALS-like): expected information per second of the expert's time.

Mackowiak et al. (2018, CEREALS) label small regions rather than whole images and pick them by
uncertainty divided by a learnt estimate of the annotation cost. Here a task (a tile, or a small
region tile when tasks are cut small) scores

    top-k % entropy / predicted seconds

with the seconds predicted from the prediction's structure, :func:`cost_features`: its area
(kpx, the time to look at it), its number of connected regions and its boundary length (kpx,
the time to follow edges with a brush). :class:`CostModel` starts from a prior and is refitted
(non-negative least squares) on the seconds experts actually spent (``lead_time``) on the tasks
they submitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import nnls

from active_learning.strategies.base import Scorer
from active_learning.strategies.top_k_entropy import top_fraction_mean
from ml_backend.segmenters.base import Segmenter
from ml_backend.uncertainty import entropy_map

COST_FEATURES = ("constant", "area_kpx", "regions", "boundary_kpx")


def cost_features(classes: np.ndarray, pixel_scale: int = 1) -> np.ndarray:
    """(4,) float64: 1, area in kpx, connected regions of the class map, boundary pixels in kpx.

    ``pixel_scale``: the map is a grid every ``pixel_scale`` px of the task (areas scale by its
    square, boundary lengths by it).
    """
    regions = sum(ndimage.label(classes == k)[1] for k in np.unique(classes))
    boundary = int((classes[1:] != classes[:-1]).sum() + (classes[:, 1:] != classes[:, :-1]).sum())
    return np.array([1.0, classes.size * pixel_scale**2 / 1000.0, float(regions), boundary * pixel_scale / 1000.0])


@dataclass(frozen=True)
class CostModel:
    """Predicted seconds = ``coef @ cost_features`` (all coefficients >= 0).

    The prior: 8 s to open and submit, 0.4 s per kpx to look, 3 s per region, 2 s per kpx of
    boundary (a guess, replaced by :meth:`fit` once experts' times are known).
    """

    coef: tuple[float, ...] = (8.0, 0.4, 3.0, 2.0)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Seconds for (N, 4) or (4,) features (at least 1 s)."""
        return np.maximum(np.asarray(features, np.float64) @ np.asarray(self.coef), 1.0)

    @classmethod
    def fit(cls, features: Sequence[np.ndarray], seconds: Sequence[float], prior_weight: float = 4.0) -> CostModel:
        """Non-negative least squares on observed times, with the prior as ``prior_weight`` pseudo-observations.

        Raises:
            ValueError: if features and seconds differ in number.
        """
        x, y = np.asarray(features, np.float64).reshape(-1, len(COST_FEATURES)), np.asarray(seconds, np.float64)
        if len(x) != len(y):
            raise ValueError(f"{len(x)} feature rows for {len(y)} times")
        prior = np.asarray(cls().coef)
        ridge = np.sqrt(prior_weight) * np.eye(len(prior))  # pulls each coefficient towards the prior
        coef, _ = nnls(np.vstack([x, ridge]), np.concatenate([y, ridge @ prior]))
        return cls(tuple(float(c) for c in coef))


class CostAwareScorer(Scorer):
    """Top-k % entropy per predicted second of correction.

    Args:
        fraction: Share of the most uncertain pixels whose mean entropy is the information term.
        cost: The cost model (default: the prior).
    """

    name = "cost-aware"

    def __init__(self, fraction: float = 0.1, cost: CostModel | None = None) -> None:
        self.fraction = float(fraction)
        self.cost = cost or CostModel()

    def score(self, image: np.ndarray, segmenter: Segmenter, probs: np.ndarray | None = None) -> float:
        """Information over predicted seconds (the unit is 1/s, so compare scores of one model only)."""
        probs = self.probabilities(image, segmenter, probs)
        gain = top_fraction_mean(entropy_map(probs), self.fraction)
        return float(gain / self.cost.predict(cost_features(np.argmax(probs, axis=0))))
