"""The event-log database: its engine, and its schema brought up to date by Alembic migrations.

One database (SQLite file or PostgreSQL) holds the event log and the tables beside it, all
defined in :mod:`active_learning.schema`. Tables are created and changed only by the migrations
in :mod:`active_learning.migrations`, run by :func:`upgrade_database`; the classes that use the
tables (``EventLog``, ``HarvestLog``, ``TrainingQueue``, ``WorkerLease``, ``ScoreStore``,
``InteractionLog``) never create them. Each ``from_url`` runs :func:`upgrade_database` (a no-op
on an up-to-date database), so whoever opens the database by URL finds it complete; a class
built on an engine assumes the engine's database was upgraded (``scraiber backend`` and
``scraiber worker`` upgrade it once, in :func:`scraiber.worker_process.prepare_database`,
before their processes start).

The web workers and the harvest worker start at the same moment on the same database, so an
upgrade holds a lock for its whole transaction: on PostgreSQL a transaction-level advisory
lock, on SQLite the database's write lock (``BEGIN IMMEDIATE``). A second process waits, then
finds the database at head and does nothing. DDL is transactional on both, so an upgrade that
fails leaves the database as it was.

A database made before there were migrations (its tables created by the constructors, no
``alembic_version`` table) is adopted by the first migration: it checks that the tables
present are those it would create (columns, primary keys, indexes), creates the missing ones,
and records its revision; later migrations then run as on any database.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine

#: Folder of the migrations (``env.py``, ``script.py.mako``, ``versions/``).
MIGRATIONS = Path(__file__).with_name("migrations")
#: Key of the PostgreSQL advisory lock held while the schema is upgraded (any constant bigint).
_UPGRADE_LOCK = 0x5C2A_1BE2_0000_0001


def make_engine(url: str) -> Engine:
    """SQLAlchemy engine for the event log; SQLite gets WAL, full sync and a busy timeout."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:  # noqa: ANN001 - DB-API connection
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configuration of the event-log migrations, built in code (no ``alembic.ini``).

    ``connection`` is the connection the migrations run on (``env.py`` takes it from
    ``config.attributes``), in the caller's transaction.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration's revision."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def upgrade_database(url_or_engine: str | Engine) -> None:
    """Bring the event-log database at a URL or engine to the newest schema.

    An empty database gets every migration; one made before migrations existed is checked
    and adopted (see the module docstring); a managed one gets the migrations it lacks.
    Safe to call from processes that start together: they take turns.

    Raises:
        RuntimeError: a table of a database made before migrations differs from what the
            first migration expects (nothing is changed then).
    """
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.connect() as connection:
            _lock(connection)
            command.upgrade(alembic_config(connection), "head")
            connection.commit()
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


def _lock(connection: Connection) -> None:
    """Begin the upgrade's transaction holding a lock no other upgrade can take meanwhile."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK})
    elif connection.dialect.name == "sqlite":
        # the driver begins no transaction before DDL; this one takes the write lock at once
        # and waits (busy timeout) while another process holds it
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        raise RuntimeError(f"the event log supports SQLite and PostgreSQL, not {connection.dialect.name}")
