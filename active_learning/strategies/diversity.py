"""Diversity-aware batch selection: greedy k-center over task embeddings, traded off against score.

Labelling the ``k`` most uncertain tasks often means labelling ``k`` near-copies (tiles of the
same difficult section). Greedy k-center (Sener & Savarese 2018, "core-set") instead adds,
one at a time, the task farthest from those already chosen. Here each step maximises

    (1 - diversity) * score' + diversity * distance'

where ``score'`` is the score rescaled to [0, 1] over the candidates and ``distance'`` the
distance to the nearest chosen task divided by the largest such distance. The first task is
the highest-scoring one; ``diversity=0`` is top-k, ``diversity=1`` pure k-center. Given the
embeddings of the tasks already ``labelled``, distances count from those too (the core-set rule:
cover what is not covered yet), and the first pick is made by the same trade-off. Embeddings:
:mod:`active_learning.strategies.features` (cheap summaries) or the FCN encoder's
(:mod:`active_learning.strategies.embeddings`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from active_learning.strategies.base import ScoredTask, Selector


class DiverseSelector(Selector):
    """Greedy k-center with a score trade-off.

    Args:
        diversity: Weight of the distance term in [0, 1].
        standardise: Scale every feature to unit standard deviation over the candidates
            first (features of different units then weigh alike).
    """

    name = "diverse"

    def __init__(self, diversity: float = 0.5, standardise: bool = True, labelled: np.ndarray | None = None) -> None:
        if not 0.0 <= diversity <= 1.0:
            raise ValueError(f"diversity weight must be in [0, 1], got {diversity}")
        self.diversity = float(diversity)
        self.standardise = standardise
        self.labelled = (
            None if labelled is None or len(labelled) == 0 else np.atleast_2d(np.asarray(labelled, np.float64))
        )

    def select(self, tasks: Sequence[ScoredTask], k: int) -> list[ScoredTask]:
        """Up to ``k`` tasks in the order chosen.

        Raises:
            ValueError: for a negative ``k`` or tasks whose feature vectors differ in length.
        """
        self._check_k(k)
        if not tasks or k == 0:
            return []
        order = sorted(range(len(tasks)), key=lambda i: (-tasks[i].score, tasks[i].task_id))
        tasks = [tasks[i] for i in order]  # ties everywhere below resolve to the better-ranked task
        lengths = {np.asarray(task.features).size for task in tasks}
        if len(lengths) != 1:
            raise ValueError(
                f"all tasks need feature vectors of one length for diverse selection, got lengths {sorted(lengths)}"
            )
        features = np.stack([np.asarray(task.features, dtype=np.float64).ravel() for task in tasks])
        labelled = self.labelled
        if labelled is not None and labelled.shape[1] != features.shape[1]:
            raise ValueError(f"labelled embeddings have {labelled.shape[1]} values, the tasks' {features.shape[1]}")
        if self.standardise:
            both = features if labelled is None else np.vstack([features, labelled])
            centre, spread = both.mean(axis=0), both.std(axis=0)
            spread = np.where(spread > 0, spread, 1.0)
            features = (features - centre) / spread
            labelled = None if labelled is None else (labelled - centre) / spread
        scores = np.array([task.score for task in tasks], dtype=np.float64)
        span = scores.max() - scores.min()
        scores = (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)
        available = np.ones(len(tasks), dtype=bool)
        if labelled is None:
            chosen = [0]
            nearest = np.linalg.norm(features - features[0], axis=1)
            available[0] = False
        else:
            chosen = []
            nearest = np.min(np.linalg.norm(features[:, None, :] - labelled[None, :, :], axis=2), axis=1)
        while len(chosen) < min(k, len(tasks)):
            far = nearest[available].max()
            distance = nearest / far if far > 0 else np.zeros_like(nearest)
            value = (1.0 - self.diversity) * scores + self.diversity * distance
            value[~available] = -np.inf
            pick = int(np.argmax(value))
            chosen.append(pick)
            available[pick] = False
            nearest = np.minimum(nearest, np.linalg.norm(features - features[pick], axis=1))
        return [tasks[i] for i in chosen]
