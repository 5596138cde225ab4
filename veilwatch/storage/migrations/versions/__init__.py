"""Numbered schema revisions (vNNNN_*.py), applied in order; Alembic skips this file."""
