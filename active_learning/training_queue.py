"""Training requests and training runs, beside the event log, for the retraining cycle.

The harvest worker only *records* that training was asked for (Label Studio's
START_TRAINING event): one row in ``training_requests`` per event, so a re-delivered or
re-processed event asks once. The retraining cycle (:mod:`active_learning.retrain`) takes
pending requests and writes one row per run it performs into ``training_runs``, and where a
running cycle stands into ``training_progress`` (phase, step, ETA, last validation); the
backend's ``/status`` counts the runs as ``training_runs`` and shows the latest one as
``training``. Nothing here trains.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from active_learning.schema import training_progress, training_requests, training_runs

PENDING, TAKEN, RUNNING = "pending", "taken", "running"

PROGRESS_FIELDS = ("phase", "step", "steps", "loss", "eta_s", "val_score", "champion_score")


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
        engine: Engine of the event-log database, upgraded (:func:`active_learning.db.upgrade_database`).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

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
        primary_key = result.inserted_primary_key
        assert primary_key is not None  # set for a single-row insert
        return int(primary_key[0])

    def finish_run(
        self, run_id: int, status: str, model_version: str | None = None, mlflow_run_id: str | None = None
    ) -> None:
        """Record how a run ended (``promoted``, ``not-promoted``, ``failed``...) and what it produced."""
        with self.engine.begin() as connection:
            connection.execute(
                update(training_runs)
                .where(training_runs.c.id == run_id)
                .values(
                    finished_at=time.time(),
                    status=status[:16],
                    model_version=model_version,
                    mlflow_run_id=mlflow_run_id,
                )
            )

    def record_progress(self, run_id: int, phase: str, **fields: float | int | None) -> None:
        """Where run ``run_id`` stands: ``phase`` and any of ``step``, ``steps``, ``loss``, ``eta_s``,
        ``val_score``, ``champion_score`` (fields not given keep their last value)."""
        unknown = set(fields) - set(PROGRESS_FIELDS)
        if unknown:
            raise ValueError(f"unknown progress fields {sorted(unknown)}; valid: {', '.join(PROGRESS_FIELDS)}")
        values = {"phase": phase[:64], "updated_at": time.time(), **fields}
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(training_progress).where(training_progress.c.run_id == run_id).values(**values)
            ).rowcount
            if not changed:  # one writer per run (the cycle holds the training lease)
                connection.execute(insert(training_progress).values(run_id=run_id, **values))

    def latest(self) -> dict | None:
        """The latest run with its progress, for ``/status``; None before the first run.

        ``elapsed_s`` counts from its start (to its end once finished); ``previous_s`` is how long
        the last finished run before it took, the expected duration of a running one.
        """
        with self.engine.connect() as connection:
            run = connection.execute(select(training_runs).order_by(training_runs.c.id.desc()).limit(1)).one_or_none()
            if run is None:
                return None
            progress = connection.execute(
                select(training_progress).where(training_progress.c.run_id == run.id)
            ).one_or_none()
            previous = connection.execute(
                select(training_runs.c.started_at, training_runs.c.finished_at)
                .where(training_runs.c.id < run.id, training_runs.c.finished_at.is_not(None),
                       training_runs.c.status.in_(("promoted", "not-promoted")))
                .order_by(training_runs.c.id.desc()).limit(1)
            ).one_or_none()  # fmt: skip
        body = {"run": run.id, "status": run.status, "started_at": run.started_at, "finished_at": run.finished_at,
                "elapsed_s": round((run.finished_at or time.time()) - run.started_at, 1),
                "registered_as": run.model_version if run.finished_at else None,  # registry name and version
                "previous_s": round(previous.finished_at - previous.started_at, 1) if previous else None}  # fmt: skip
        if progress is not None:
            body.update({name: getattr(progress, name) for name in PROGRESS_FIELDS})
            body["progress_at"] = progress.updated_at
        return body

    def last_started(self) -> float | None:
        """When the last training run started (epoch seconds), or None."""
        with self.engine.connect() as connection:
            return connection.execute(select(func.max(training_runs.c.started_at))).scalar_one()

    def runs(self) -> list[dict]:
        """All training runs, oldest first, as dicts."""
        with self.engine.connect() as connection:
            return [
                dict(row._mapping) for row in connection.execute(select(training_runs).order_by(training_runs.c.id))
            ]
