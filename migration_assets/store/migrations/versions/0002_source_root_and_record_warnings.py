"""source root and record warnings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_warnings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("record_index", sa.Integer(), nullable=False),
        sa.Column("legacy_id", sa.String(length=512), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["migration_runs.id"], name=op.f("fk_record_warnings_run_id_migration_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_warnings")),
    )
    with op.batch_alter_table("record_warnings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_warnings_run_id"), ["run_id"], unique=False)

    with op.batch_alter_table("content_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_root", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("content_items", schema=None) as batch_op:
        batch_op.drop_column("source_root")

    with op.batch_alter_table("record_warnings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_warnings_run_id"))

    op.drop_table("record_warnings")
