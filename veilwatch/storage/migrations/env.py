"""Alembic environment: migrate the connection that `Database.open()` hands over.

There is no alembic.ini and no URL here on purpose: migrations run only inside veilwatch, on
the writer's connection, within the transaction the writer opened.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("veilwatch migrations run only through veilwatch.storage.Database.open()")

context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
