"""Initial schema: users, sessions, recording segments, control actions.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the four tables and their indexes."""
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64, collation="NOCASE"), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.UniqueConstraint("name"),
        sa.CheckConstraint("role IN ('visitor', 'operator', 'auditor', 'admin')", name="ck_users_role"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_seen_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.UniqueConstraint("token_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("start_at", sa.Double(), nullable=False),
        sa.Column("end_at", sa.Double(), nullable=True),
        sa.Column("bytes", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("frames", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("status", sa.String(8), nullable=False),
        sa.UniqueConstraint("path"),
        sa.CheckConstraint("status IN ('writing', 'complete')", name="ck_segments_status"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_segments_camera_start_at", "segments", ["camera", "start_at"])
    op.create_index("ix_segments_start_at", "segments", ["start_at"])
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("camera", sa.String(64), nullable=True),
        sa.Column("details", sa.Text(), nullable=False, server_default=sa.text("'{}'")),
        sqlite_autoincrement=True,  # ids are never reused, in every table
    )
    op.create_index("ix_actions_at", "actions", ["at"])
    op.create_index("ix_actions_camera_at", "actions", ["camera", "at"])


def downgrade() -> None:
    """Drop everything (development only: it deletes every user, session, segment row and action)."""
    for table in ("actions", "segments", "sessions", "users"):
        op.drop_table(table)
