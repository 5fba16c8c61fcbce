"""The two extension points of active learning: scoring (expensive, stored) and selection (cheap, reads scores).

A :class:`Scorer` says how informative one task is from a segmenter and the task's image,
reusing the class probabilities already computed for the prediction when it is given them.
A :class:`Selector` never touches images or models: it ranks :class:`ScoredTask` rows read
from the score store (``active_learning.strategies.store``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ml_backend.segmenters.base import Segmenter


class Scorer(ABC):
    """Per-task informativeness; higher means more worth an expert's time.

    Attributes:
        name: Registry name, stored with every score.
    """

    name: str

    @abstractmethod
    def score(self, image: np.ndarray, segmenter: Segmenter, probs: np.ndarray | None = None) -> float:
        """The task's score.

        Args:
            image: The task's raw 2-D grey image.
            segmenter: The model being scored.
            probs: ``segmenter.predict_proba(image)`` when the caller has it already.
        """

    @staticmethod
    def probabilities(image: np.ndarray, segmenter: Segmenter, probs: np.ndarray | None) -> np.ndarray:
        """``probs`` if given, else the segmenter's (C, H, W) probabilities of ``image``."""
        if probs is None:
            return segmenter.predict_proba(image)
        if probs.ndim != 3 or probs.shape[1:] != image.shape:
            raise ValueError(f"probabilities of shape {probs.shape} do not fit an image of shape {image.shape}")
        return probs


@dataclass(frozen=True)
class ScoredTask:
    """One task as selection sees it.

    Attributes:
        task_id: Label Studio task id.
        score: The scorer's value (higher = more informative).
        features: Embedding used for diversity (see ``active_learning.strategies.features``).
    """

    task_id: int
    score: float
    features: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), compare=False)


class Selector(ABC):
    """Chooses which scored tasks to label next, from stored scores only."""

    name: str

    @abstractmethod
    def select(self, tasks: Sequence[ScoredTask], k: int) -> list[ScoredTask]:
        """Up to ``k`` tasks in the order they should be labelled.

        Raises:
            ValueError: if ``k`` is negative.
        """

    @staticmethod
    def _check_k(k: int) -> None:
        if not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"number of tasks to select must be a non-negative integer, got {k!r}")
