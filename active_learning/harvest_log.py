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

Table ``known_projects`` remembers the Label Studio projects the backend serves (the
reconciler's project list); table ``project_backends`` the URLs under which Label Studio
called this backend for each project, so the reconciler can tell whether a project still
lists this backend among its ML backends. A project that no longer does is forgotten from
``known_projects`` (its URLs are kept: a later harvest of an old event does not bring it
back, a new ``/setup`` does).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from active_learning.db import make_engine, upgrade_database
from active_learning.schema import harvests, known_projects, project_backends

LABEL, SKIP, EMPTY = "label", "skip", "empty"
"""Kinds of harvest: an implicit label, a skipped task, a submission with nothing painted."""


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
        engine: Engine of the event-log database, upgraded (:func:`active_learning.db.upgrade_database`;
            :meth:`from_url` upgrades it).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str) -> HarvestLog:
        """Harvest log in the database at ``url`` (the event log's URL), upgraded first."""
        engine = make_engine(url)
        upgrade_database(engine)
        return cls(engine)

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
                primary_key = connection.execute(insert(harvests).values(**values)).inserted_primary_key
                assert primary_key is not None  # a single-row INSERT always reports its primary key
                row_id = primary_key[0]
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

    def note_project(self, project_id: int, source: str, backend_url: str | None = None) -> None:
        """Remember that the backend serves ``project_id`` (first sighting wins), reached at ``backend_url``."""
        project_id = int(project_id)
        with self.engine.connect() as connection:
            known = connection.execute(
                select(known_projects.c.project_id).where(known_projects.c.project_id == project_id)
            ).first()
            url_known = (
                backend_url is None
                or connection.execute(
                    select(project_backends.c.project_id).where(
                        project_backends.c.project_id == project_id, project_backends.c.backend_url == backend_url[:300]
                    )
                ).first()
            )
        if not known:
            _insert_once(self.engine, known_projects, project_id=project_id, first_seen_at=time.time(), source=source)
        if not url_known:
            assert backend_url is not None  # url_known is True when backend_url is None
            _insert_once(self.engine, project_backends, project_id=project_id, backend_url=backend_url[:300],
                         seen_at=time.time())  # fmt: skip

    def backend_urls(self, project_id: int) -> set[str]:
        """The URLs under which Label Studio called this backend for ``project_id``."""
        query = select(project_backends.c.backend_url).where(project_backends.c.project_id == int(project_id))
        with self.engine.connect() as connection:
            return {row.backend_url for row in connection.execute(query)}

    def lists_this_backend(self, project_id: int, ml_backends: list[dict]) -> bool:
        """True when one of the project's ML backends (Label Studio's list) is this backend.

        This backend is recognised by the URLs Label Studio called it under for the project;
        a project noted before URLs were recorded counts as connected.
        """
        ours = self.backend_urls(project_id)
        return not ours or any(same_backend(str(b.get("url") or ""), url) for b in ml_backends for url in ours)

    def forget_project(self, project_id: int) -> None:
        """Stop serving ``project_id`` (until it is noted again); its harvested labels stay."""
        with self.engine.begin() as connection:
            connection.execute(delete(known_projects).where(known_projects.c.project_id == int(project_id)))

    def known_projects(self) -> list[int]:
        """Projects noted so far, in id order."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(known_projects.c.project_id).order_by(known_projects.c.project_id))
            return [int(row.project_id) for row in rows]


def _insert_once(engine: Engine, table: Table, **values: Any) -> None:
    try:
        with engine.begin() as connection:
            connection.execute(insert(table).values(**values))
    except IntegrityError:
        pass  # inserted by another process in the meantime


def same_backend(listed: str, called_as: str) -> bool:
    """True when an ML backend URL listed in Label Studio is the one this backend was called as.

    Host names are compared without case, and ports when ``called_as`` names one (it comes
    from a ``Host`` header, which a proxy may send without a port).
    """
    a, b = urlsplit(listed.strip()), urlsplit(called_as.strip())
    try:
        listed_port = a.port or {"http": 80, "https": 443}.get(a.scheme.lower())
        called_port = b.port
    except ValueError:  # a port that is not a number
        return False
    same_host = bool(a.hostname) and (a.hostname or "").lower() == (b.hostname or "").lower()
    return same_host and (called_port is None or called_port == listed_port)
