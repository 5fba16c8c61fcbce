"""Tracking data of interactive refinement: one row per smart-tool request answered.

Table ``interactions`` lives in the event-log database. Annotators are stored only as
pseudonyms (:mod:`active_learning.pseudonyms`). The tracking analysis reads the rows with
:meth:`InteractionLog.rows` (or straight from the table).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from active_learning.db import make_engine, upgrade_database
from active_learning.pseudonyms import pseudonym
from active_learning.schema import interactions
from ml_backend.refine import Interaction

log = logging.getLogger(__name__)


class InteractionLog:
    """Stores :class:`~ml_backend.refine.Interaction` records (the refiner's ``record`` callback).

    Args:
        engine: Database engine (``active_learning.db.make_engine``) of an upgraded database
            (:func:`active_learning.db.upgrade_database`; ``from_url`` upgrades it).
        pseudonym_key: Key of the annotator pseudonyms.
    """

    def __init__(self, engine: Engine, pseudonym_key: bytes) -> None:
        self.engine = engine
        self._key = pseudonym_key

    @classmethod
    def from_url(cls, url: str, pseudonym_key: bytes) -> InteractionLog:
        """Log at a database URL (``sqlite:///path`` or ``postgresql://...``), upgraded first."""
        engine = make_engine(url)
        upgrade_database(engine)
        return cls(engine, pseudonym_key)

    def record(self, interaction: Interaction) -> None:
        """Store one interaction. A database error is logged, not raised: the expert still gets the answer."""
        annotator = None
        if interaction.user is not None:
            try:
                annotator = pseudonym(interaction.user, self._key)
            except ValueError:
                annotator = None
        row = {
            "received_at": time.time(),
            "project_id": interaction.project_id,
            "task_id": interaction.task_id,
            "annotator": annotator,
            "keypoints": interaction.keypoints,
            "negative_keypoints": interaction.negative_keypoints,
            "strokes": interaction.strokes,
            "classes": json.dumps(list(interaction.classes)),
            "latency_ms": round(float(interaction.latency_ms), 3),
            "cached": bool(interaction.cached),
            "changed_fraction": float(interaction.changed_fraction),
            "height": interaction.height,
            "width": interaction.width,
            "model_version": interaction.model_version[:160],
        }
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(interactions).values(**row))
        except SQLAlchemyError as exc:
            log.warning("interaction of task %s not logged: %s", interaction.task_id, exc)

    def rows(self, project_id: int | None = None) -> list[dict[str, Any]]:
        """Stored interactions, oldest first (``classes`` decoded to a list)."""
        query = select(interactions).order_by(interactions.c.id)
        if project_id is not None:
            query = query.where(interactions.c.project_id == int(project_id))
        with self.engine.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query)]
        for row in rows:
            row["classes"] = json.loads(row["classes"])
        return rows
