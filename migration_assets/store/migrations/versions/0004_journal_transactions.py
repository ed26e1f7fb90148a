"""journal transactions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journal_transactions",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("tx", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "tx", name=op.f("pk_journal_transactions")),
    )


def downgrade() -> None:
    op.drop_table("journal_transactions")
