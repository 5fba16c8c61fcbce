"""The durable event log: every webhook event is stored before the backend answers.

Only what the harvest reads is stored (:func:`harvest_fields`): the action and the ids
(annotation id and ``updated_at``, task, project), never the annotation's regions or the
project's config, so a 50 MB webhook stores a few hundred bytes; a stored payload larger
than :data:`MAX_EVENT_BYTES` is refused, and a bulk delete is stored as events of at most
:data:`MAX_IDS_PER_EVENT` annotations. The worker reads everything else from Label Studio.

SQLite in WAL mode with ``synchronous=FULL`` by default (a committed event survives
SIGKILL and power loss), PostgreSQL by URL. Work happens in a worker that claims
events one at a time; an event claimed by a worker that died is claimed again after
``stale_after`` seconds, and the handlers are idempotent, so nothing is lost and
nothing is harvested twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from active_learning.db import make_engine, upgrade_database
from active_learning.schema import events

#: Events scrAiber acts on; anything else is recorded with status "ignored".
HANDLED_ACTIONS = frozenset(
    {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "ANNOTATION_DELETED", "START_TRAINING"}
)
PENDING, PROCESSING, DONE, IGNORED, FAILED = "pending", "processing", "done", "ignored", "failed"
#: Largest payload stored per event (after :func:`harvest_fields`).
MAX_EVENT_BYTES = 16 * 1024
#: Annotations per stored ANNOTATIONS_DELETED event (a bulk delete becomes several events).
MAX_IDS_PER_EVENT = 500
_MAX_ID = 2**63 - 1
_ANNOTATION_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED"})


@dataclass(frozen=True)
class Event:
    """One stored webhook event."""

    id: int
    action: str
    payload: dict[str, Any]
    received_at: float
    attempts: int


def delivery_key(payload: dict[str, Any]) -> str:
    """Identity of a delivery: the same payload delivered twice has the same key."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def harvest_fields(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of a webhook payload the harvest needs, as one or more payloads to store.

    Raises:
        ValueError: the payload has no string ``action``, or lacks the ids its action needs
            (``annotation.id``; ``annotations[].id`` for ANNOTATIONS_DELETED).
    """
    action = payload.get("action")
    if not isinstance(action, str) or not action:
        raise ValueError("event payload has no 'action'")
    slim: dict[str, Any] = {"action": action[:64]}
    for key in ("project", "task"):
        item = payload.get(key)
        found = _id(item.get("id") if isinstance(item, dict) else item)
        if found is not None:
            slim[key] = {"id": found}
    if action in _ANNOTATION_ACTIONS:
        annotation = payload.get("annotation")
        annotation = annotation if isinstance(annotation, dict) else {}
        found = _id(annotation.get("id"))
        if found is None:
            raise ValueError(f"{action} payload has no numeric annotation.id")
        slim["annotation"] = {"id": found}
        if isinstance(annotation.get("updated_at"), str):
            slim["annotation"]["updated_at"] = annotation["updated_at"][:64]
        return [slim]
    if action == "ANNOTATIONS_DELETED":
        items = payload.get("annotations")
        ids = [_id(item.get("id")) if isinstance(item, dict) else None for item in items or []]
        if not isinstance(items, list) or not ids or None in ids:
            raise ValueError("ANNOTATIONS_DELETED payload needs an 'annotations' list of objects with numeric ids")
        return [
            {**slim, "annotations": [{"id": i} for i in ids[start : start + MAX_IDS_PER_EVENT]]}
            for start in range(0, len(ids), MAX_IDS_PER_EVENT)
        ]
    if action == "START_TRAINING":
        if isinstance(payload.get("requested_at"), (int, float)):
            slim["requested_at"] = float(payload["requested_at"])
        if isinstance(payload.get("via"), str):
            slim["via"] = payload["via"][:32]
    return [slim]


def _identified_by_content(part: dict[str, Any]) -> bool:
    """Whether a stored event part is its own identity (see :meth:`EventLog.record`)."""
    if part["action"] == "START_TRAINING":
        return False
    return part["action"] != "ANNOTATION_UPDATED" or "updated_at" in part.get("annotation", {})


def _id(value: Any) -> int | None:
    """A Label Studio id (int, or a string of ASCII digits) within a database integer; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    return value if isinstance(value, int) and 0 <= value <= _MAX_ID else None


class EventLog:
    """Append-only store of webhook events with a work queue over them.

    Args:
        engine: Database engine (see :func:`make_engine`) of an upgraded database
            (:func:`active_learning.db.upgrade_database`; :meth:`from_url` upgrades it).
        max_attempts: After this many failed attempts an event is parked as "failed".
    """

    def __init__(self, engine: Engine, max_attempts: int = 5) -> None:
        self.engine = engine
        self.max_attempts = max_attempts

    @classmethod
    def from_url(cls, url: str) -> EventLog:
        """Event log at a database URL (``sqlite:///path`` or ``postgresql://...``), upgraded first."""
        engine = make_engine(url)
        upgrade_database(engine)
        return cls(engine)

    def record(self, payload: dict[str, Any]) -> bool:
        """Store one event durably (its :func:`harvest_fields`); returns False for a duplicate delivery.

        Duplicates: an event is recognised by what is stored of it (:func:`harvest_fields`), so
        the same annotation version, or the same project change, delivered twice with other
        payload details (Label Studio sends a project webhook and an ML-backend webhook, and
        repeats around a restart) is one event. Two kinds are recognised by the whole payload
        (:func:`delivery_key`) instead, because their stored form may not tell two real events
        apart: START_TRAINING (each request counts) and ANNOTATION_UPDATED without ``updated_at``.

        Raises:
            ValueError: if the payload lacks what its action needs, or its stored form
                exceeds :data:`MAX_EVENT_BYTES`.
        """
        stored = False
        key = delivery_key(payload)  # of the whole delivery: the same payload twice is one event
        for index, part in enumerate(harvest_fields(payload)):
            if _identified_by_content(part):
                part_key = delivery_key(part)
            else:
                part_key = key if index == 0 else hashlib.sha256(f"{key}:{index}".encode()).hexdigest()
            text = json.dumps(part, separators=(",", ":"))
            if len(text) > MAX_EVENT_BYTES:
                raise ValueError(f"event too large to store ({len(text)} bytes, at most {MAX_EVENT_BYTES})")
            row = {
                "delivery_key": part_key,
                "action": part["action"],
                "payload": text,
                "received_at": time.time(),
                "status": PENDING if part["action"] in HANDLED_ACTIONS else IGNORED,
                "attempts": 0,
            }
            try:
                with self.engine.begin() as connection:
                    connection.execute(insert(events).values(**row))
            except IntegrityError:
                continue
            stored = True
        return stored

    def claim(self, stale_after: float = 900.0) -> Event | None:
        """Take the oldest pending event (or one whose worker died) for processing."""
        now = time.time()
        claimable = or_(
            events.c.status == PENDING, (events.c.status == PROCESSING) & (events.c.claimed_at < now - stale_after)
        )
        oldest = select(events.c.id).where(claimable).order_by(events.c.id).limit(1).scalar_subquery()
        statement = (
            update(events)
            .where(events.c.id == oldest, claimable)
            .values(status=PROCESSING, claimed_at=now, attempts=events.c.attempts + 1)
            .returning(events.c.id, events.c.action, events.c.payload, events.c.received_at, events.c.attempts)
        )
        with self.engine.begin() as connection:
            row = connection.execute(statement).first()
        if row is None:
            return None
        return Event(row.id, row.action, json.loads(row.payload), row.received_at, row.attempts)

    def complete(self, event_id: int) -> None:
        """Mark an event processed."""
        self._finish(event_id, DONE, None)

    def fail(self, event: Event, error: str) -> None:
        """Record a failed attempt: back to pending, or parked as failed after ``max_attempts``."""
        self._finish(event.id, FAILED if event.attempts >= self.max_attempts else PENDING, error[:2000])

    def _finish(self, event_id: int, status: str, error: str | None) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(events)
                .where(events.c.id == event_id)
                .values(status=status, processed_at=time.time(), error=error)
            )

    def counts(self) -> dict[str, int]:
        """Number of events per status (all statuses present, zero if none)."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(events.c.status, func.count()).group_by(events.c.status)).all()
        counts = dict.fromkeys((PENDING, PROCESSING, DONE, IGNORED, FAILED), 0)
        counts.update({status: n for status, n in rows})
        return counts

    def oldest_waiting(self) -> float | None:
        """``received_at`` of the oldest event not handled yet (pending or processing), None if none."""
        query = select(func.min(events.c.received_at)).where(events.c.status.in_((PENDING, PROCESSING)))
        with self.engine.connect() as connection:
            return connection.execute(query).scalar()

    def list_events(self, action: str | None = None) -> list[Event]:
        """All stored events (optionally of one action), oldest first."""
        query = select(events).order_by(events.c.id)
        if action is not None:
            query = query.where(events.c.action == action)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [Event(r.id, r.action, json.loads(r.payload), r.received_at, r.attempts) for r in rows]
