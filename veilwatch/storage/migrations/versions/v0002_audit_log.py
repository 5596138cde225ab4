"""The tamper-evident log: leaves, perfect-subtree hashes, signed checkpoints, witness cosignatures.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

APPEND_ONLY = ("audit_leaves", "audit_nodes", "audit_checkpoints", "audit_cosignatures")


def upgrade() -> None:
    """Create the log's four tables, append-only."""
    op.create_table(
        "audit_leaves",
        sa.Column("idx", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("appended_at", sa.Double(), nullable=False),
        sa.CheckConstraint("idx >= 0", name="ck_audit_leaves_idx"),
    )
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
        sa.CheckConstraint("length(digest) = 32", name="ck_audit_nodes_digest"),
        sqlite_with_rowid=False,  # two million small rows per million entries: keep them in the key's b-tree
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("signed_at", sa.Double(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_checkpoints_size", "audit_checkpoints", ["size"])
    op.create_table(
        "audit_cosignatures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("checkpoint_id", sa.Integer(), sa.ForeignKey("audit_checkpoints.id"), nullable=False),
        sa.Column("witness", sa.String(256), nullable=False),
        sa.Column("key_id", sa.String(8), nullable=False),
        sa.Column("cosigned_at", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.UniqueConstraint("checkpoint_id", "witness", "key_id", "cosigned_at", name="uq_audit_cosignatures"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_cosignatures_checkpoint_id", "audit_cosignatures", ["checkpoint_id"])
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def downgrade() -> None:
    """Drop the log (development only: it deletes the whole history)."""
    op.drop_index("ix_audit_cosignatures_checkpoint_id", "audit_cosignatures")
    op.drop_table("audit_cosignatures")
    op.drop_index("ix_audit_checkpoints_size", "audit_checkpoints")
    for table in ("audit_checkpoints", "audit_nodes", "audit_leaves"):
        op.drop_table(table)
