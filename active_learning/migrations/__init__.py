"""Alembic migrations of the event-log database; run them with :func:`active_learning.db.upgrade_database`.

A new migration: change the tables in :mod:`active_learning.schema`, then write
``versions/NNNN_<what>.py`` by hand (``down_revision`` = the previous one) with explicit
``op`` calls, constraint names included (see ``schema.NAMING_CONVENTION``). To draft one
from the difference to a database at head::

    from alembic import command
    from active_learning.db import alembic_config, make_engine
    with make_engine(URL).begin() as connection:
        command.revision(alembic_config(connection), "what changed", autogenerate=True, rev_id="0002")
"""
