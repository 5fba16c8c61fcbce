"""Alembic's environment: migrations run on the connection in ``config.attributes["connection"]``.

:func:`active_learning.db.upgrade_database` opens that connection, takes the upgrade lock and
begins the transaction; the migrations run inside it (Alembic begins none of its own) and the
caller commits. No ``alembic.ini``: :func:`active_learning.db.alembic_config` builds the config.
"""

from __future__ import annotations

from alembic import context

from active_learning.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("run the event-log migrations with active_learning.db.upgrade_database")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
