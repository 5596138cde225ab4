"""An index of actions by kind, newest first: the transparency page's "who watched" asks by kind.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Index actions by (kind, id)."""
    op.create_index("ix_actions_kind_id", "actions", ["kind", "id"])


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_actions_kind_id", "actions")
