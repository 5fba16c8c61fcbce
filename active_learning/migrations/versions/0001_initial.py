"""The schema of the event-log database as the code made it before there were migrations.

Revision ID: 0001
Revises:
Create Date: 2026-12-07

On a database made before migrations (its tables created by the classes that use them, no
``alembic_version``), tables already present are checked, not created: each must have the
columns, primary key and indexes written here, or the migration stops with the differences
and changes nothing. Tables missing there (a class that never ran) are created. Constraint
names are PostgreSQL's defaults, which such databases on PostgreSQL already carry.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> dict[str, tuple[list[SchemaItem], dict[str, list[str]]]]:
    """Table name -> (columns and constraints, index name -> its columns); new objects at each call."""
    return {
        "events": (
            [
                sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
                sa.Column("delivery_key", sa.String(64), nullable=False),
                sa.Column("action", sa.String(64), nullable=False),
                sa.Column("payload", sa.Text(), nullable=False),
                sa.Column("received_at", sa.Float(), nullable=False),
                sa.Column("status", sa.String(16), nullable=False),
                sa.Column("attempts", sa.Integer(), nullable=False),
                sa.Column("claimed_at", sa.Float(), nullable=True),
                sa.Column("processed_at", sa.Float(), nullable=True),
                sa.Column("error", sa.Text(), nullable=True),
                sa.PrimaryKeyConstraint("id", name="events_pkey"),
                sa.UniqueConstraint("delivery_key", name="events_delivery_key_key"),
            ],
            {"ix_events_action": ["action"], "ix_events_status": ["status"]},
        ),
        "training_requests": (
            [
                sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
                sa.Column("event_id", sa.Integer(), nullable=True),
                sa.Column("project_id", sa.Integer(), nullable=True),
                sa.Column("reason", sa.String(64), nullable=False),
                sa.Column("requested_at", sa.Float(), nullable=False),
                sa.Column("status", sa.String(16), nullable=False),
                sa.PrimaryKeyConstraint("id", name="training_requests_pkey"),
                sa.UniqueConstraint("event_id", name="training_requests_event_id_key"),
            ],
            {"ix_training_requests_status": ["status"]},
        ),
        "training_runs": (
            [
                sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
                sa.Column("request_id", sa.Integer(), nullable=True),
                sa.Column("started_at", sa.Float(), nullable=False),
                sa.Column("finished_at", sa.Float(), nullable=True),
                sa.Column("status", sa.String(16), nullable=False),
                sa.Column("model_version", sa.String(255), nullable=True),
                sa.Column("mlflow_run_id", sa.String(64), nullable=True),
                sa.PrimaryKeyConstraint("id", name="training_runs_pkey"),
            ],
            {},
        ),
        "training_progress": (
            [
                sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
                sa.Column("updated_at", sa.Float(), nullable=False),
                sa.Column("phase", sa.String(64), nullable=False),
                sa.Column("step", sa.Integer(), nullable=True),
                sa.Column("steps", sa.Integer(), nullable=True),
                sa.Column("loss", sa.Float(), nullable=True),
                sa.Column("eta_s", sa.Float(), nullable=True),
                sa.Column("val_score", sa.Float(), nullable=True),
                sa.Column("champion_score", sa.Float(), nullable=True),
                sa.PrimaryKeyConstraint("run_id", name="training_progress_pkey"),
            ],
            {},
        ),
        "worker_lease": (
            [
                sa.Column("name", sa.String(64), nullable=False),
                sa.Column("holder", sa.String(128), nullable=False),
                sa.Column("host", sa.String(255), nullable=False),
                sa.Column("pid", sa.Integer(), nullable=False),
                sa.Column("heartbeat_at", sa.Float(), nullable=False),
                sa.PrimaryKeyConstraint("name", name="worker_lease_pkey"),
            ],
            {},
        ),
        "task_scores": (
            [
                sa.Column("project", sa.Integer(), nullable=False),
                sa.Column("task", sa.Integer(), nullable=False),
                sa.Column("model_version", sa.String(128), nullable=False),
                sa.Column("strategy", sa.String(64), nullable=False),
                sa.Column("score", sa.Float(), nullable=False),
                sa.Column("features", sa.Text(), nullable=True),
                sa.Column("computed_at", sa.Float(), nullable=False),
                sa.PrimaryKeyConstraint("project", "task", "model_version", "strategy", name="task_scores_pkey"),
            ],
            {},
        ),
        "harvests": (
            [
                sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
                sa.Column("annotation_id", sa.Integer(), nullable=False),
                sa.Column("updated_at", sa.String(64), nullable=False),
                sa.Column("updated_ts", sa.Float(), nullable=False),
                sa.Column("project_id", sa.Integer(), nullable=False),
                sa.Column("task_id", sa.Integer(), nullable=False),
                sa.Column("kind", sa.String(16), nullable=False),
                sa.Column("annotator", sa.String(64), nullable=True),
                sa.Column("model_version", sa.String(255), nullable=True),
                sa.Column("prediction_id", sa.Integer(), nullable=True),
                sa.Column("prediction_rule", sa.String(32), nullable=True),
                sa.Column("lead_time", sa.Float(), nullable=True),
                sa.Column("was_cancelled", sa.Boolean(), nullable=False),
                sa.Column("created_at", sa.String(64), nullable=True),
                sa.Column("harvested_at", sa.Float(), nullable=False),
                sa.Column("superseded_at", sa.Float(), nullable=True),
                sa.Column("retracted_at", sa.Float(), nullable=True),
                sa.Column("label_key", sa.String(512), nullable=True),
                sa.Column("stats", sa.Text(), nullable=True),
                sa.PrimaryKeyConstraint("id", name="harvests_pkey"),
                sa.UniqueConstraint("annotation_id", "updated_at", name="uq_harvest_version"),
            ],
            {"ix_harvests_annotation_id": ["annotation_id"], "ix_harvests_project_id": ["project_id"]},
        ),
        "known_projects": (
            [
                sa.Column("project_id", sa.Integer(), autoincrement=False, nullable=False),
                sa.Column("first_seen_at", sa.Float(), nullable=False),
                sa.Column("source", sa.String(32), nullable=False),
                sa.PrimaryKeyConstraint("project_id", name="known_projects_pkey"),
            ],
            {},
        ),
        "project_backends": (
            [
                sa.Column("project_id", sa.Integer(), autoincrement=False, nullable=False),
                sa.Column("backend_url", sa.String(300), nullable=False),
                sa.Column("seen_at", sa.Float(), nullable=False),
                sa.PrimaryKeyConstraint("project_id", "backend_url", name="project_backends_pkey"),
            ],
            {},
        ),
        "interactions": (
            [
                sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
                sa.Column("received_at", sa.Float(), nullable=False),
                sa.Column("project_id", sa.Integer(), nullable=True),
                sa.Column("task_id", sa.Integer(), nullable=True),
                sa.Column("annotator", sa.String(64), nullable=True),
                sa.Column("keypoints", sa.Integer(), nullable=False),
                sa.Column("negative_keypoints", sa.Integer(), nullable=False),
                sa.Column("strokes", sa.Integer(), nullable=False),
                sa.Column("classes", sa.Text(), nullable=False),
                sa.Column("latency_ms", sa.Float(), nullable=False),
                sa.Column("cached", sa.Boolean(), nullable=False),
                sa.Column("changed_fraction", sa.Float(), nullable=False),
                sa.Column("height", sa.Integer(), nullable=False),
                sa.Column("width", sa.Integer(), nullable=False),
                sa.Column("model_version", sa.String(160), nullable=False),
                sa.PrimaryKeyConstraint("id", name="interactions_pkey"),
            ],
            {"ix_interactions_project_id": ["project_id"]},
        ),
    }


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    present = set(inspector.get_table_names())
    differences = [
        difference
        for name, (items, indexes) in _tables().items()
        if name in present
        for difference in _differences(inspector, sa.Table(name, sa.MetaData(), *items), indexes)
    ]
    if differences:
        raise RuntimeError(
            "the event-log database was made before migrations but its tables differ from what "
            "revision 0001 expects, so it is left as it is: " + "; ".join(differences)
        )
    for name, (items, indexes) in _tables().items():
        if name not in present:
            op.create_table(name, *items)
            for index, columns in indexes.items():
                op.create_index(index, name, columns, unique=False)


def downgrade() -> None:
    for name in reversed(list(_tables())):
        op.drop_table(name)


def _differences(inspector: sa.Inspector, table: sa.Table, indexes: dict[str, list[str]]) -> list[str]:
    """How the existing table differs from this revision's ``table`` (empty: it matches)."""
    name, found = table.name, []
    have = {column["name"] for column in inspector.get_columns(name)}
    if have != set(table.columns.keys()):
        missing, extra = sorted(set(table.columns.keys()) - have), sorted(have - set(table.columns.keys()))
        found.append(f"{name}: columns missing {missing}, unexpected {extra}")
    primary = inspector.get_pk_constraint(name)["constrained_columns"]
    if primary != [column.name for column in table.primary_key.columns]:
        found.append(f"{name}: primary key on {primary}")
    unique: set[tuple[str | None, ...]] = {tuple(c["column_names"]) for c in inspector.get_unique_constraints(name)}
    unique |= {tuple(i["column_names"]) for i in inspector.get_indexes(name) if i["unique"]}
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint) and tuple(constraint.columns.keys()) not in unique:
            found.append(f"{name}: no unique constraint on {list(constraint.columns.keys())}")
    have_indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes(name)}
    for index, columns in indexes.items():
        if have_indexes.get(index) != columns:
            found.append(f"{name}: index {index} on {columns} is missing")
    return found
