"""Harvest records: one row per harvested annotation version, beside the event log.

Table ``harvests`` lives in the event-log database (same engine, SQLite or PostgreSQL).
A row is unique per (annotation id, annotation ``updated_at``), which makes harvesting
exactly-once: a re-delivered event finds its row and does nothing. A newer version of
the same annotation adds a row and marks the older one ``superseded_at``; a deleted
annotation's current row gets ``retracted_at`` (rows are never deleted, so the history
stays available to the tracking analysis).

Each row carries provenance (project, task, annotator pseudonym, model version, the
prediction the expert started from, lead time, skip flag, timestamps) and, as JSON, the
correction statistics of :meth:`active_learning.corrections.Correction.stats`
(per-class kept/added/removed/relabelled pixels and the confusion matrix).

Table ``known_projects`` remembers the Label Studio projects the backend has seen
events or annotations from (one of the sources of the reconciler's project list).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from active_learning.db import create_tables
from active_learning.event_log import make_engine

LABEL, SKIP, EMPTY = "label", "skip", "empty"
"""Kinds of harvest: an implicit label, a skipped task, a submission with nothing painted."""

metadata = MetaData()
harvests = Table(
    "harvests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("annotation_id", Integer, nullable=False, index=True),
    Column("updated_at", String(64), nullable=False),
    Column("updated_ts", Float, nullable=False),
    Column("project_id", Integer, nullable=False, index=True),
    Column("task_id", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("annotator", String(64)),
    Column("model_version", String(255)),
    Column("prediction_id", Integer),
    Column("prediction_rule", String(32)),
    Column("lead_time", Float),
    Column("was_cancelled", Boolean, nullable=False),
    Column("created_at", String(64)),
    Column("harvested_at", Float, nullable=False),
    Column("superseded_at", Float),
    Column("retracted_at", Float),
    Column("label_key", String(512)),
    Column("stats", Text),
    UniqueConstraint("annotation_id", "updated_at", name="uq_harvest_version"),
)
known_projects = Table(
    "known_projects",
    metadata,
    Column("project_id", Integer, primary_key=True, autoincrement=False),
    Column("first_seen_at", Float, nullable=False),
    Column("source", String(32), nullable=False),
)


def timestamp(value: str) -> float:
    """Seconds since the epoch of a Label Studio ISO timestamp (``...Z`` or with offset).

    Raises:
        ValueError: if ``value`` is not an ISO 8601 timestamp.
    """
    parsed = datetime.fromisoformat(str(value).strip())
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return parsed.timestamp()


@dataclass(frozen=True)
class HarvestRecord:
    """One harvested annotation version.

    Attributes:
        annotation_id: Label Studio annotation id.
        updated_at: The annotation's ``updated_at`` as Label Studio wrote it.
        project_id: Label Studio project.
        task_id: Label Studio task.
        kind: ``"label"`` (implicit label stored), ``"skip"`` (task skipped, nothing stored)
            or ``"empty"`` (submitted with nothing painted, nothing stored).
        annotator: Pseudonym of the user who completed the annotation.
        model_version: Version of the model whose prediction the expert started from.
        prediction_id: That prediction's id (None: no prediction found).
        prediction_rule: How it was found (see :mod:`active_learning.harvest`).
        lead_time: Seconds the expert spent (Label Studio's ``lead_time``), None if unknown.
        was_cancelled: True for a skip.
        created_at: The annotation's ``created_at``.
        label_key: Artefact-store key of the label arrays (``.npz``; provenance beside it as ``.json``).
        stats: Correction statistics (empty for skips).
        id: Row id (0 before storing).
        harvested_at: When the row was stored (epoch seconds).
        superseded_at: When a newer version of the annotation replaced it.
        retracted_at: When the annotation was found deleted.
    """

    annotation_id: int
    updated_at: str
    project_id: int
    task_id: int
    kind: str
    annotator: str | None = None
    model_version: str | None = None
    prediction_id: int | None = None
    prediction_rule: str | None = None
    lead_time: float | None = None
    was_cancelled: bool = False
    created_at: str | None = None
    label_key: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    id: int = 0
    harvested_at: float = 0.0
    superseded_at: float | None = None
    retracted_at: float | None = None

    @property
    def active(self) -> bool:
        """True for the current, not retracted version of an annotation."""
        return self.superseded_at is None and self.retracted_at is None


_FIELDS = [name for name in HarvestRecord.__dataclass_fields__ if name != "stats"]


def _record(row: Any) -> HarvestRecord:
    values = {name: getattr(row, name) for name in _FIELDS}
    values["was_cancelled"] = bool(values["was_cancelled"])
    return HarvestRecord(stats=json.loads(row.stats) if row.stats else {}, **values)


class HarvestLog:
    """Harvest records in the event-log database.

    Args:
        engine: Engine of the event-log database (tables are created if missing).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(engine, metadata)

    @classmethod
    def from_url(cls, url: str) -> HarvestLog:
        """Harvest log in the database at ``url`` (the event log's URL)."""
        return cls(make_engine(url))

    def has(self, annotation_id: int, updated_at: str) -> bool:
        """True if this version of the annotation was harvested already."""
        query = select(harvests.c.id).where(
            harvests.c.annotation_id == int(annotation_id), harvests.c.updated_at == str(updated_at)
        )
        with self.engine.connect() as connection:
            return connection.execute(query).first() is not None

    def add(self, record: HarvestRecord) -> HarvestRecord | None:
        """Store a harvested version; it supersedes older versions of the annotation.

        A version older than the current one is stored as superseded at once.

        Returns:
            The stored record, or None if this version was stored before (a no-op).
        """
        now = time.time()
        updated_ts = timestamp(record.updated_at)
        values = {name: getattr(record, name) for name in _FIELDS if name not in ("id", "harvested_at")}
        values.update(
            annotation_id=int(record.annotation_id),
            stats=json.dumps(record.stats, separators=(",", ":")) if record.stats else None,
            updated_ts=updated_ts,
            harvested_at=now,
            superseded_at=None,
            retracted_at=None,
        )
        same = harvests.c.annotation_id == int(record.annotation_id)
        try:
            with self.engine.begin() as connection:
                newer = connection.execute(
                    select(func.count()).where(same, harvests.c.updated_ts > updated_ts)
                ).scalar_one()
                if newer:
                    values["superseded_at"] = now
                row_id = connection.execute(insert(harvests).values(**values)).inserted_primary_key[0]
                if not newer:
                    connection.execute(
                        update(harvests)
                        .where(same, harvests.c.id != row_id, harvests.c.superseded_at.is_(None))
                        .values(superseded_at=now)
                    )
        except IntegrityError:
            return None
        return replace(record, id=row_id, harvested_at=now, superseded_at=values["superseded_at"], retracted_at=None)

    def current(self, annotation_id: int) -> HarvestRecord | None:
        """The latest (not superseded) version of an annotation, retracted or not."""
        query = select(harvests).where(
            harvests.c.annotation_id == int(annotation_id), harvests.c.superseded_at.is_(None)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query.order_by(harvests.c.updated_ts.desc()).limit(1)).first()
        return _record(row) if row is not None else None

    def retract(self, annotation_id: int) -> HarvestRecord | None:
        """Mark the annotation's current version retracted; returns it, or None if none was active."""
        now = time.time()
        active = (
            (harvests.c.annotation_id == int(annotation_id))
            & harvests.c.superseded_at.is_(None)
            & harvests.c.retracted_at.is_(None)
        )
        with self.engine.begin() as connection:
            row = connection.execute(select(harvests).where(active)).first()
            if row is None:
                return None
            connection.execute(update(harvests).where(harvests.c.id == row.id).values(retracted_at=now))
        return replace(_record(row), retracted_at=now)

    def records(
        self,
        project: int | None = None,
        include_retracted: bool = False,
        include_superseded: bool = False,
        kind: str | None = None,
    ) -> list[HarvestRecord]:
        """Harvest records, oldest first: by default the active versions of all kinds.

        Args:
            project: Only this Label Studio project.
            include_retracted: Also versions of deleted annotations.
            include_superseded: Also versions replaced by a later edit (full history).
            kind: Only ``"label"``, ``"skip"`` or ``"empty"``.
        """
        query = select(harvests).order_by(harvests.c.id)
        if project is not None:
            query = query.where(harvests.c.project_id == int(project))
        if not include_retracted:
            query = query.where(harvests.c.retracted_at.is_(None))
        if not include_superseded:
            query = query.where(harvests.c.superseded_at.is_(None))
        if kind is not None:
            query = query.where(harvests.c.kind == kind)
        with self.engine.connect() as connection:
            return [_record(row) for row in connection.execute(query)]

    def count_labels(self) -> int:
        """Number of active implicit labels (current, not retracted, kind "label")."""
        query = select(func.count()).where(
            harvests.c.kind == LABEL, harvests.c.superseded_at.is_(None), harvests.c.retracted_at.is_(None)
        )
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def current_versions(self, project: int) -> dict[int, str]:
        """Annotation id -> ``updated_at`` of the active versions in a project."""
        return {r.annotation_id: r.updated_at for r in self.records(project=project)}

    def note_project(self, project_id: int, source: str) -> None:
        """Remember that the backend serves ``project_id`` (first sighting wins)."""
        with self.engine.connect() as connection:
            if connection.execute(
                select(known_projects.c.project_id).where(known_projects.c.project_id == int(project_id))
            ).first():
                return
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(known_projects).values(project_id=int(project_id), first_seen_at=time.time(), source=source)
                )
        except IntegrityError:
            pass  # noted by someone else in the meantime

    def known_projects(self) -> list[int]:
        """Projects noted so far, in id order."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(known_projects.c.project_id).order_by(known_projects.c.project_id))
            return [int(row.project_id) for row in rows]
