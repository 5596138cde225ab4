"""Sealed face chunks, unmask requests, approvals, revoked key holders; each action's log index.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the vault's tables; link actions to their log leaves."""
    op.add_column("actions", sa.Column("log_index", sa.Integer(), nullable=True))
    op.create_table(
        "sealed_chunks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("start_at", sa.Double(), nullable=False),
        sa.Column("end_at", sa.Double(), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.UniqueConstraint("path"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sealed_chunks_camera_start_at", "sealed_chunks", ["camera", "start_at"])
    op.create_table(
        "unmask_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("start_at", sa.Double(), nullable=False),
        sa.Column("end_at", sa.Double(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requester", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("canonical", sa.Text(), nullable=False),
        sa.Column("approvers", sa.Text(), nullable=False, server_default=sa.text("'[]'")),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.CheckConstraint("status IN ('pending', 'executed', 'refused', 'expired')", name="ck_unmask_requests_status"),
    )
    op.create_index("ix_unmask_requests_created_at", "unmask_requests", ["created_at"])
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("request_id", sa.String(32), sa.ForeignKey("unmask_requests.id", ondelete="CASCADE"), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("approval_id", sa.String(64), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.UniqueConstraint("approval_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_approvals_request_id", "approvals", ["request_id"])
    op.create_table(
        "revoked_holders",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("revoked_at", sa.Double(), nullable=False),
        sa.Column("revoked_by", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    """Drop the vault's tables (development only: sealed chunks become unreachable)."""
    for table in ("revoked_holders", "approvals", "unmask_requests", "sealed_chunks"):
        op.drop_table(table)
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("log_index")
