"""Alembic migrations of the storage schema, run to head by `Database.open()`.

This folder ships inside the package as plain Python modules (it and `versions/` are packages,
so setuptools picks them up like any other code); `veilwatch.storage.db.MIGRATIONS_DIR` points
Alembic at it, relative to the installed `db.py`, so no alembic.ini is needed at run time.

To change the schema, add `versions/vNNNN_what.py` with `revision = "NNNN"` and
`down_revision` set to the previous number, written with explicit `op.*` calls (never by
importing the live models, which move on), and update `storage/models.py` to match:
`tests/storage/test_db.py` fails while the models and the migrated schema differ. Each migration
runs inside one `BEGIN IMMEDIATE` transaction; SQLite cannot ALTER most things in place, so
use `op.batch_alter_table` (env.py turns batch rendering on).
"""
