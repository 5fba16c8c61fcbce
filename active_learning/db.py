"""Shared database helper for the tables that live beside the event log."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.engine import Engine
from sqlalchemy.schema import CreateIndex, CreateTable


def create_tables(engine: Engine, metadata: MetaData) -> None:
    """Create ``metadata``'s tables and indexes if missing.

    ``IF NOT EXISTS`` (SQLite and PostgreSQL) instead of a check-then-create, because the
    web workers and the harvest worker start at the same moment on the same database.
    """
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            connection.execute(CreateTable(table, if_not_exists=True))
            for index in table.indexes:
                connection.execute(CreateIndex(index, if_not_exists=True))
