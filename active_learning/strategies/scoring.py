"""The scoring pass: one prediction per task, every requested scorer on it, rows into the score store.

The class probabilities are computed once per task and shared by all scorers and the
feature embedding; only scorers that need more (MC dropout) run the model again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from active_learning.strategies.base import Scorer
from active_learning.strategies.features import task_features
from active_learning.strategies.store import ScoreRow, ScoreStore
from ml_backend.predictor import TASK_ERRORS
from ml_backend.segmenters.base import Segmenter

log = logging.getLogger(__name__)


def score_image(
    image: np.ndarray, segmenter: Segmenter, scorers: Sequence[Scorer]
) -> tuple[dict[str, float], np.ndarray]:
    """({scorer name: score}, feature embedding) of one image, predicting it once."""
    probs = segmenter.predict_proba(image)
    return {scorer.name: scorer.score(image, segmenter, probs) for scorer in scorers}, task_features(image, probs)


def score_tasks(
    project: int,
    tasks: Iterable[dict[str, Any]],
    fetch: Callable[[dict[str, Any]], np.ndarray],
    segmenter: Segmenter,
    scorers: Sequence[Scorer],
    store: ScoreStore,
    progress: bool = False,
) -> dict[int, dict[str, float]]:
    """Score tasks and store the scores (one row per task and scorer) as they are computed.

    Args:
        project: Label Studio project id.
        tasks: Task dicts with ``id``.
        fetch: The raw image of a task.
        segmenter: The model whose uncertainty is scored (its ``version`` is stored).
        scorers: Strategies to evaluate on the same prediction.
        store: Where rows go.
        progress: tqdm bar on stderr.

    Returns:
        {task id: {strategy: score}} of the tasks scored; a task whose image cannot be
        read is logged and skipped.
    """
    if not scorers:
        raise ValueError("give at least one query strategy to score with")
    scored: dict[int, dict[str, float]] = {}
    tasks = list(tasks)
    for task in tqdm(tasks, desc="scoring", unit="task", disable=not progress):
        try:
            image = fetch(task)
        except TASK_ERRORS as exc:
            log.warning("task %s: not scored: %s", task.get("id"), exc)
            continue
        scores, features = score_image(image, segmenter, scorers)
        store.put(
            ScoreRow(project, int(task["id"]), segmenter.version, name, value, features)
            for name, value in scores.items()
        )
        scored[int(task["id"])] = scores
    return scored
