"""Top-k selection: the highest stored scores first."""

from __future__ import annotations

from collections.abc import Sequence

from active_learning.strategies.base import ScoredTask, Selector


class TopKSelector(Selector):
    """The ``k`` highest scores, ties broken by the lower task id (deterministic)."""

    name = "top-k"

    def select(self, tasks: Sequence[ScoredTask], k: int) -> list[ScoredTask]:
        """Up to ``k`` tasks, highest score first."""
        self._check_k(k)
        return sorted(tasks, key=lambda task: (-task.score, task.task_id))[:k]
