"""Training requests and training runs, beside the event log, for the retraining cycle.

The harvest worker only *records* that training was asked for (Label Studio's
START_TRAINING event): one row in ``training_requests`` per event, so a re-delivered or
re-processed event asks once. The retraining cycle (:mod:`active_learning.retrain`) takes
pending requests and writes one row per run it performs into ``training_runs``; the
backend's ``/status`` counts those rows as ``training_runs``. Nothing here trains.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from active_learning.db import create_tables

PENDING, TAKEN, RUNNING = "pending", "taken", "running"

metadata = MetaData()
training_requests = Table(
    "training_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Integer, unique=True),
    Column("project_id", Integer),
    Column("reason", String(64), nullable=False),
    Column("requested_at", Float, nullable=False),
    Column("status", String(16), nullable=False, index=True),
)
training_runs = Table(
    "training_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Integer),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("status", String(16), nullable=False),
    Column("model_version", String(255)),
    Column("mlflow_run_id", String(64)),
)


@dataclass(frozen=True)
class TrainingRequest:
    """A recorded wish to retrain."""

    id: int
    event_id: int | None
    project_id: int | None
    reason: str
    requested_at: float
    status: str


class TrainingQueue:
    """Training requests (written by the worker) and runs (written by the retraining cycle).

    Args:
        engine: Engine of the event-log database (tables are created if missing).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(engine, metadata)

    def request(self, reason: str, project_id: int | None = None, event_id: int | None = None) -> bool:
        """Record a training request; False if the event already asked (idempotent per event)."""
        row = {
            "event_id": event_id,
            "project_id": project_id,
            "reason": reason[:64],
            "requested_at": time.time(),
            "status": PENDING,
        }
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(training_requests).values(**row))
        except IntegrityError:
            return False
        return True

    def requests(self, status: str | None = None) -> list[TrainingRequest]:
        """Training requests, oldest first (optionally only those with ``status``)."""
        query = select(training_requests).order_by(training_requests.c.id)
        if status is not None:
            query = query.where(training_requests.c.status == status)
        with self.engine.connect() as connection:
            return [
                TrainingRequest(r.id, r.event_id, r.project_id, r.reason, r.requested_at, r.status)
                for r in connection.execute(query)
            ]

    def count_runs(self) -> int:
        """Training runs recorded by the retraining cycle."""
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(training_runs)).scalar_one())

    def take_requests(self, run_id: int) -> list[TrainingRequest]:
        """Mark every pending request as served by run ``run_id``; returns them."""
        pending = self.requests(PENDING)
        if pending:
            with self.engine.begin() as connection:
                connection.execute(
                    update(training_requests)
                    .where(training_requests.c.id.in_([r.id for r in pending]))
                    .values(status=f"{TAKEN}:{run_id}"[:16])
                )
        return pending

    def start_run(self, reason: str) -> int:
        """Record a training run that starts now; returns its id."""
        with self.engine.begin() as connection:
            result = connection.execute(
                insert(training_runs).values(started_at=time.time(), status=RUNNING, model_version=reason[:255])
            )
        return int(result.inserted_primary_key[0])

    def finish_run(self, run_id: int, status: str, model_version: str | None = None, mlflow_run_id: str | None = None) -> None:
        """Record how a run ended (``promoted``, ``not-promoted``, ``failed``...) and what it produced."""
        with self.engine.begin() as connection:
            connection.execute(
                update(training_runs)
                .where(training_runs.c.id == run_id)
                .values(finished_at=time.time(), status=status[:16], model_version=model_version, mlflow_run_id=mlflow_run_id)
            )

    def last_started(self) -> float | None:
        """When the last training run started (epoch seconds), or None."""
        with self.engine.connect() as connection:
            return connection.execute(select(func.max(training_runs.c.started_at))).scalar_one()

    def runs(self) -> list[dict]:
        """All training runs, oldest first, as dicts."""
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(select(training_runs).order_by(training_runs.c.id))]
