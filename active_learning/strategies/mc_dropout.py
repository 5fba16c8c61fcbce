"""MC-dropout scoring: mutual information (BALD) between the prediction and the model's weights.

Several stochastic forward passes with dropout enabled approximate samples from the
posterior over weights. Per pixel, the mutual information

    I = H(mean_t p_t) - mean_t H(p_t)

is high where the samples are each confident but disagree (epistemic uncertainty: the model
has not seen such pixels), and zero where all samples agree, however uncertain they are
(Houlsby et al. 2011, "BALD"; Gal et al. 2017). The task score is its image mean, divided by
``log C`` so it lies in [0, 1].
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import numpy as np

from active_learning.strategies.base import Scorer
from ml_backend.segmenters.base import Segmenter
from ml_backend.uncertainty import entropy_map

log = logging.getLogger(__name__)


@runtime_checkable
class StochasticSegmenter(Protocol):
    """A segmenter that can draw stochastic predictions (``FCNSegmenter`` does)."""

    def predict_proba_samples(self, image: np.ndarray, n: int, dropout: float = 0.2, seed: int = 0) -> np.ndarray:
        """(n, C, H, W) float32 class probabilities of ``n`` dropout passes."""


def mutual_information_map(samples: np.ndarray) -> np.ndarray:
    """(H, W) float32 mutual information of (T, C, H, W) samples, normalised by ``log C`` to [0, 1].

    Raises:
        ValueError: for another shape, or fewer than 2 classes.
    """
    if samples.ndim != 4 or samples.shape[1] < 2 or samples.shape[0] < 1:
        raise ValueError(f"expected (T, C, H, W) samples with T >= 1, C >= 2, got shape {samples.shape}")
    mean_entropy = np.mean([entropy_map(sample) for sample in samples], axis=0)
    return np.maximum(entropy_map(samples.mean(axis=0)) - mean_entropy, 0.0).astype(np.float32)


class MCDropoutScorer(Scorer):
    """Mean normalised mutual information of ``samples`` dropout passes.

    Segmenters without stochastic passes (the unsupervised one) are scored by entropy
    instead, with a warning in the log once per model version: the backend keeps working
    before the first FCN is trained.

    Args:
        samples: Dropout passes per image (>= 2).
        dropout: Channel dropout probability before the segmentation head.
        seed: Seed of the dropout masks.
    """

    name = "mc-dropout"

    def __init__(self, samples: int = 8, dropout: float = 0.2, seed: int = 0) -> None:
        if not isinstance(samples, (int, np.integer)) or samples < 2:
            raise ValueError(f"MC dropout needs at least 2 samples, got {samples!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {dropout}")
        self.samples, self.dropout, self.seed = int(samples), float(dropout), int(seed)
        self._warned: set[str] = set()

    def score(self, image: np.ndarray, segmenter: Segmenter, probs: np.ndarray | None = None) -> float:
        """Mean of :func:`mutual_information_map` over the dropout samples of ``image``."""
        if not isinstance(segmenter, StochasticSegmenter):
            if segmenter.version not in self._warned:
                self._warned.add(segmenter.version)
                log.warning(
                    "query strategy mc-dropout needs a segmenter with dropout passes (fcn); "
                    "%s has none, scoring by entropy instead",
                    segmenter.version,
                )
            return float(entropy_map(self.probabilities(image, segmenter, probs)).mean())
        samples = segmenter.predict_proba_samples(image, self.samples, dropout=self.dropout, seed=self.seed)
        return float(mutual_information_map(samples).mean())
