"""BADGE selection: k-means++ seeding on gradient embeddings (Ash et al. 2020).

Each task's embedding (:func:`active_learning.strategies.embeddings.gradient_embedding`) is the
gradient a linear head on the network's per-pixel features would get from the task if its own
prediction were the label: long where the model is uncertain, pointing where the task's content
lies. k-means++ seeding picks the first task with the longest embedding, then each next one with
probability proportional to its squared distance to the nearest one picked: uncertain and diverse
in one draw, without a weight to tune.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from active_learning.strategies.base import ScoredTask, Selector


class BadgeSelector(Selector):
    """k-means++ seeding over the tasks' stored feature vectors (gradient embeddings).

    Args:
        seed: Seed of the draws.
    """

    name = "badge"

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def select(self, tasks: Sequence[ScoredTask], k: int) -> list[ScoredTask]:
        """Up to ``k`` tasks in the order drawn.

        Raises:
            ValueError: for a negative ``k`` or feature vectors of different lengths.
        """
        self._check_k(k)
        if not tasks or k == 0:
            return []
        tasks = sorted(tasks, key=lambda task: task.task_id)
        if len({np.asarray(task.features).size for task in tasks}) != 1:
            raise ValueError("all tasks need gradient embeddings of one length for BADGE")
        g = np.stack([np.asarray(task.features, np.float64).ravel() for task in tasks])
        rng = np.random.default_rng(self.seed)
        chosen = [int(np.argmax(np.einsum("ij,ij->i", g, g)))]
        nearest = np.sum((g - g[chosen[0]]) ** 2, axis=1)
        while len(chosen) < min(k, len(tasks)):
            weights = nearest.copy()
            weights[chosen] = 0.0
            total = weights.sum()
            if total <= 0:  # every remaining task coincides with a chosen one: take the next by score
                rest = [i for i in np.argsort([-t.score for t in tasks], kind="stable") if i not in chosen]
                pick = int(rest[0])
            else:
                pick = int(rng.choice(len(tasks), p=weights / total))
            chosen.append(pick)
            nearest = np.minimum(nearest, np.sum((g - g[pick]) ** 2, axis=1))
        return [tasks[i] for i in chosen]
