"""Every table of the event-log database, in one :class:`~sqlalchemy.MetaData`.

The event log, the harvest log, the training queue, the worker lease, the task scores and the
interaction log share one database (SQLite file or PostgreSQL). Their tables are defined here
and nowhere else; the modules that use them import them from here. The tables are created and
changed only by the Alembic migrations in :mod:`active_learning.migrations`, run by
:func:`active_learning.db.upgrade_database`; a change to a table here needs a new migration.

Names, types, indexes and constraints are those the modules created before there were
migrations, so a database made then matches. The naming convention gives every constraint a
name (Alembic can only alter or drop a named constraint) and is PostgreSQL's own default
naming, which those databases already carry: ``<table>_pkey``, ``<table>_<column>_key``,
``<table>_<column>_fkey``; indexes keep SQLAlchemy's default ``ix_<table>_<column>``.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text, UniqueConstraint

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "%(table_name)s_%(column_0_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# -- the event log (active_learning.event_log) -------------------------------------------------
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_key", String(64), nullable=False, unique=True),
    Column("action", String(64), nullable=False, index=True),
    Column("payload", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_at", Float),
    Column("processed_at", Float),
    Column("error", Text),
)

# -- training requests, runs and progress (active_learning.training_queue) ---------------------
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
#: The latest progress of a run (one row per run, replaced at each update).
training_progress = Table(
    "training_progress",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=False),
    Column("updated_at", Float, nullable=False),
    Column("phase", String(64), nullable=False),
    Column("step", Integer),
    Column("steps", Integer),
    Column("loss", Float),
    Column("eta_s", Float),
    Column("val_score", Float),
    Column("champion_score", Float),
)

# -- the worker's lease (active_learning.worker) -----------------------------------------------
worker_lease = Table(
    "worker_lease",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)

# -- task scores (active_learning.strategies.store) --------------------------------------------
task_scores = Table(
    "task_scores",
    metadata,
    Column("project", Integer, primary_key=True),
    Column("task", Integer, primary_key=True),
    Column("model_version", String(128), primary_key=True),
    Column("strategy", String(64), primary_key=True),
    Column("score", Float, nullable=False),
    Column("features", Text),
    Column("computed_at", Float, nullable=False),
)

# -- the harvest log (active_learning.harvest_log) ---------------------------------------------
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
project_backends = Table(
    "project_backends",
    metadata,
    Column("project_id", Integer, primary_key=True, autoincrement=False),
    Column("backend_url", String(300), primary_key=True),
    Column("seen_at", Float, nullable=False),
)

# -- interactive refinement (active_learning.interaction_log) ----------------------------------
interactions = Table(
    "interactions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", Float, nullable=False),
    Column("project_id", Integer, index=True),
    Column("task_id", Integer),
    Column("annotator", String(64)),
    Column("keypoints", Integer, nullable=False),
    Column("negative_keypoints", Integer, nullable=False),
    Column("strokes", Integer, nullable=False),
    Column("classes", Text, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("cached", Boolean, nullable=False),
    Column("changed_fraction", Float, nullable=False),
    Column("height", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    Column("model_version", String(160), nullable=False),
)
