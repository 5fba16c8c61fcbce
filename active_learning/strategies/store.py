"""Stored per-task scores: written by the scoring pass, read by selection (no recomputation).

One table, ``task_scores``, in the event-log database (SQLite under the data dir, or
PostgreSQL), keyed by (project, task, model_version, strategy). Each row holds the score
and the task's feature embedding for diversity-aware selection.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import and_, delete, func, insert, select, tuple_
from sqlalchemy.engine import Engine

from active_learning.db import make_engine, upgrade_database
from active_learning.schema import task_scores
from active_learning.strategies.base import ScoredTask


@dataclass(frozen=True)
class ScoreRow:
    """One stored score.

    Attributes:
        project, task: Label Studio ids.
        model_version: Version of the segmenter scored.
        strategy: Name of the scorer.
        score: Its value.
        features: Embedding for diversity (may be empty).
    """

    project: int
    task: int
    model_version: str
    strategy: str
    score: float
    features: np.ndarray


class ScoreStore:
    """Per-task scores in a SQL database.

    Args:
        engine: Database engine (``active_learning.db.make_engine``) of an upgraded database
            (:func:`active_learning.db.upgrade_database`; ``from_url`` upgrades it).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str) -> ScoreStore:
        """Store at a database URL (``sqlite:///path`` or ``postgresql://...``), upgraded first."""
        engine = make_engine(url)
        upgrade_database(engine)
        return cls(engine)

    def put(self, rows: Iterable[ScoreRow]) -> int:
        """Insert or replace rows (same key: the newer one wins); returns how many were written."""
        now = time.time()
        values = [
            {
                "project": int(row.project),
                "task": int(row.task),
                "model_version": row.model_version,
                "strategy": row.strategy,
                "score": float(row.score),
                "features": json.dumps([round(float(v), 7) for v in np.asarray(row.features).ravel()]),
                "computed_at": now,
            }
            for row in rows
        ]
        if not values:
            return 0
        keys = [(v["project"], v["task"], v["model_version"], v["strategy"]) for v in values]
        key_columns = tuple_(
            task_scores.c.project, task_scores.c.task, task_scores.c.model_version, task_scores.c.strategy
        )
        with self.engine.begin() as connection:
            for start in range(0, len(keys), 500):
                connection.execute(delete(task_scores).where(key_columns.in_(keys[start : start + 500])))
            connection.execute(insert(task_scores), values)
        return len(values)

    def scored_tasks(
        self, project: int, strategy: str, model_version: str | None = None, tasks: Iterable[int] | None = None
    ) -> list[ScoredTask]:
        """Stored scores of one project and strategy, ordered by task id.

        Args:
            project: Label Studio project id.
            strategy: Scorer name.
            model_version: Which model's scores; default: the most recently scored version.
            tasks: Only these task ids (e.g. the tasks still open).
        """
        version = model_version or self.latest_version(project, strategy)
        if version is None:
            return []
        query = (
            select(task_scores.c.task, task_scores.c.score, task_scores.c.features)
            .where(and_(task_scores.c.project == int(project), task_scores.c.strategy == strategy))
            .where(task_scores.c.model_version == version)
            .order_by(task_scores.c.task)
        )
        if tasks is not None:
            query = query.where(task_scores.c.task.in_([int(t) for t in tasks]))
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [ScoredTask(int(t), float(s), np.asarray(json.loads(f or "[]"), dtype=np.float32)) for t, s, f in rows]

    def latest_version(self, project: int, strategy: str) -> str | None:
        """The model version most recently scored with ``strategy`` in ``project``, or None."""
        query = (
            select(task_scores.c.model_version, func.max(task_scores.c.computed_at).label("at"))
            .where(and_(task_scores.c.project == int(project), task_scores.c.strategy == strategy))
            .group_by(task_scores.c.model_version)
            .order_by(func.max(task_scores.c.computed_at).desc())
            .limit(1)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else str(row[0])
