"""The configured query strategy in the backend: every prediction's ``score`` is that scorer's value.

``ml_backend.predictor.Predictor`` computes the class probabilities and then calls its
``score`` callable with them alone. Scorers that need the image or the model too (random,
MC dropout) get them through :func:`scored_predictions`: the segmenter the predictor uses is
wrapped so that, right after computing a task's probabilities, it scores them with the image
and model at hand and remembers the value for those very probabilities (by identity), which
the ``score`` callable then hands back. No image is predicted twice.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from active_learning.strategies.base import Scorer
from ml_backend.segmenters.base import Segmenter


class ScoreMemo:
    """Scores remembered for probability arrays, by identity; bounded, thread-safe."""

    def __init__(self, size: int = 64) -> None:
        self._items: OrderedDict[int, tuple[weakref.ref, float]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def put(self, probs: np.ndarray, score: float) -> None:
        """Remember ``score`` for the array ``probs``."""
        with self._lock:
            self._items[id(probs)] = (weakref.ref(probs), float(score))
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def pop(self, probs: np.ndarray) -> float:
        """The score remembered for ``probs`` (and forget it).

        Raises:
            LookupError: if these probabilities were not computed by a :class:`ScoredSegmenter`.
        """
        with self._lock:
            entry = self._items.pop(id(probs), None)
        if entry is None or entry[0]() is not probs:
            raise LookupError("no score was computed for these probabilities (predict through ScoredSegmenter)")
        return entry[1]


class ScoredSegmenter(Segmenter):
    """A segmenter whose ``predict_proba`` also scores each image with ``scorer`` into ``memo``."""

    def __init__(self, inner: Segmenter, scorer: Scorer, memo: ScoreMemo) -> None:
        self.inner, self.scorer, self.memo = inner, scorer, memo
        self.catalogue = inner.catalogue
        self.version = inner.version

    def predict_proba(self, image: np.ndarray, progress: bool = False) -> np.ndarray:
        """The inner segmenter's probabilities; their score is left in the memo."""
        probs = self.inner.predict_proba(image, progress=progress)
        self.memo.put(probs, self.scorer.score(image, self.inner, probs))
        return probs

    def segment(self, image: np.ndarray, progress: bool = False) -> np.ndarray:
        """The inner segmenter's classes (not scored)."""
        return self.inner.segment(image, progress=progress)


def scored_predictions(
    segmenter: Callable[[], Segmenter], scorer: Scorer
) -> tuple[Callable[[], Segmenter], Callable[[np.ndarray], float]]:
    """(segmenter callable, score callable) for ``Predictor(segmenter=..., score=...)``.

    Args:
        segmenter: Returns the segmenter to serve now (e.g. ``SegmenterProvider``).
        scorer: The configured query strategy.
    """
    memo = ScoreMemo()
    return (lambda: ScoredSegmenter(segmenter(), scorer, memo)), memo.pop
