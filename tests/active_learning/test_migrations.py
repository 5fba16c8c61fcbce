"""The event-log schema under Alembic: new databases, databases made before migrations, concurrent upgrades."""

import subprocess
import sys
import time
import uuid

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text, UniqueConstraint
from sqlalchemy.schema import CreateIndex, CreateTable

from active_learning.db import head_revision, make_engine, upgrade_database
from active_learning.event_log import PENDING, EventLog
from active_learning.schema import metadata

TABLES = {
    "events", "training_requests", "training_runs", "training_progress", "worker_lease", "task_scores",
    "harvests", "known_projects", "project_backends", "interactions",
}  # fmt: skip

# -- the schema as the code made it before migrations (commit c5d98e6): six MetaData, one per module --
legacy = MetaData()
Table(
    "events", legacy,
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
)  # fmt: skip
Table(
    "training_requests", legacy,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Integer, unique=True),
    Column("project_id", Integer),
    Column("reason", String(64), nullable=False),
    Column("requested_at", Float, nullable=False),
    Column("status", String(16), nullable=False, index=True),
)  # fmt: skip
Table(
    "training_runs", legacy,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Integer),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("status", String(16), nullable=False),
    Column("model_version", String(255)),
    Column("mlflow_run_id", String(64)),
)  # fmt: skip
Table(
    "training_progress", legacy,
    Column("run_id", Integer, primary_key=True, autoincrement=False),
    Column("updated_at", Float, nullable=False),
    Column("phase", String(64), nullable=False),
    Column("step", Integer),
    Column("steps", Integer),
    Column("loss", Float),
    Column("eta_s", Float),
    Column("val_score", Float),
    Column("champion_score", Float),
)  # fmt: skip
Table(
    "worker_lease", legacy,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)  # fmt: skip
Table(
    "task_scores", legacy,
    Column("project", Integer, primary_key=True),
    Column("task", Integer, primary_key=True),
    Column("model_version", String(128), primary_key=True),
    Column("strategy", String(64), primary_key=True),
    Column("score", Float, nullable=False),
    Column("features", Text),
    Column("computed_at", Float, nullable=False),
)  # fmt: skip
Table(
    "harvests", legacy,
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
)  # fmt: skip
Table(
    "known_projects", legacy,
    Column("project_id", Integer, primary_key=True, autoincrement=False),
    Column("first_seen_at", Float, nullable=False),
    Column("source", String(32), nullable=False),
)  # fmt: skip
Table(
    "project_backends", legacy,
    Column("project_id", Integer, primary_key=True, autoincrement=False),
    Column("backend_url", String(300), primary_key=True),
    Column("seen_at", Float, nullable=False),
)  # fmt: skip
Table(
    "interactions", legacy,
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
)  # fmt: skip


def create_legacy_tables(engine: sqlalchemy.Engine, names: set[str] = TABLES) -> None:
    """What the constructors did before migrations (``db.create_tables``): CREATE ... IF NOT EXISTS."""
    with engine.begin() as connection:
        for table in legacy.sorted_tables:
            if table.name in names:
                connection.execute(CreateTable(table, if_not_exists=True))
                for index in table.indexes:
                    connection.execute(CreateIndex(index, if_not_exists=True))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request, tmp_path) -> str:
    """A fresh, empty database: SQLite (the default) or a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.sqlite'}"
    server = request.getfixturevalue("postgres_url")
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    with sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    return server.rsplit("/", 1)[0] + f"/{name}"


def _version(engine: sqlalchemy.Engine) -> list[str]:
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(sqlalchemy.text("SELECT version_num FROM alembic_version"))]


def _differences_to_schema(engine: sqlalchemy.Engine) -> list:
    """What Alembic's autogenerate finds between the database and ``active_learning.schema`` (types included)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def test_empty_database_is_migrated_to_head(database_url):
    upgrade_database(database_url)
    engine = make_engine(database_url)
    assert set(sqlalchemy.inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
    assert _version(engine) == [head_revision()]
    assert _differences_to_schema(engine) == []  # the migrations build exactly the tables of schema.py
    upgrade_database(engine)  # at head: nothing to do
    assert _version(engine) == [head_revision()]
    log = EventLog(engine)
    assert log.record({"action": "ANNOTATION_CREATED", "annotation": {"id": 1}})
    assert log.counts()[PENDING] == 1


def test_constructors_create_no_tables(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'events.sqlite'}")
    EventLog(engine)
    assert sqlalchemy.inspect(engine).get_table_names() == []


def _fill_legacy(engine: sqlalchemy.Engine) -> None:
    """Rows as the old code wrote them: events through EventLog, a harvest, a training request."""
    log = EventLog(engine)  # the constructor never touched the schema, then or now
    for i in range(3):
        assert log.record({"action": "ANNOTATION_CREATED", "annotation": {"id": i, "updated_at": "t"}})
    with engine.begin() as connection:
        connection.execute(
            legacy.tables["harvests"].insert(),
            {"annotation_id": 7, "updated_at": "2026-01-01T00:00:00", "updated_ts": 1.0, "project_id": 3,
             "task_id": 70, "kind": "label", "was_cancelled": False, "harvested_at": 2.0},
        )  # fmt: skip
        connection.execute(
            legacy.tables["training_requests"].insert(),
            {"event_id": 1, "project_id": 3, "reason": "new labels", "requested_at": 3.0, "status": "pending"},
        )


def test_database_made_before_migrations_is_adopted_with_its_rows(database_url):
    engine = make_engine(database_url)
    create_legacy_tables(engine)
    _fill_legacy(engine)

    upgrade_database(database_url)

    assert _version(engine) == [head_revision()]
    with engine.connect() as connection:
        count = lambda table: connection.execute(sqlalchemy.text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: E731
        assert (count("events"), count("harvests"), count("training_requests")) == (3, 1, 1)
    log = EventLog(engine)
    assert log.counts()[PENDING] == 3
    assert log.record({"action": "ANNOTATION_CREATED", "annotation": {"id": 99}})  # ids go on after the old rows
    assert [event.id for event in iter(log.claim, None)] == [1, 2, 3, 4]


def test_database_with_some_old_tables_gets_the_missing_ones(database_url):
    engine = make_engine(database_url)
    create_legacy_tables(engine, {"events", "harvests"})  # a deployment that never ran the other classes
    _fill_legacy_events = EventLog(engine)
    assert _fill_legacy_events.record({"action": "ANNOTATION_CREATED", "annotation": {"id": 1}})

    upgrade_database(engine)

    assert set(sqlalchemy.inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
    assert _version(engine) == [head_revision()]
    assert EventLog(engine).counts()[PENDING] == 1


def test_old_table_that_differs_stops_the_upgrade_and_changes_nothing(database_url):
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE events (id INTEGER PRIMARY KEY, action VARCHAR(64))"))
    with pytest.raises(RuntimeError, match=r"events: columns missing \['attempts'"):
        upgrade_database(engine)
    assert sqlalchemy.inspect(engine).get_table_names() == ["events"]


@pytest.mark.slow  # three interpreters wait 8 s for a common start
def test_processes_starting_together_all_upgrade(database_url):
    start = time.time() + 8  # after every process has imported (a few seconds on a busy 2-core machine)
    script = (
        "import sys, time; from active_learning.db import upgrade_database; "
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); upgrade_database(sys.argv[1])"
    )
    processes = [subprocess.Popen([sys.executable, "-c", script, database_url, str(start)]) for _ in range(3)]
    assert [process.wait(timeout=120) for process in processes] == [0, 0, 0]
    engine = make_engine(database_url)
    assert _version(engine) == [head_revision()]
    assert set(sqlalchemy.inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
