"""run groups: the waves of one migration that ran as concurrent runs

``migration_runs.run_group``: the group a run belongs to: the ``migrate --waves K`` that
planned its wave, or the backfill launched in the UI that requested it (None: a run alone).
The status and history of a group are read by it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("migration_runs", sa.Column("run_group", sa.String(length=255), nullable=True))  # in place, on SQLite too
    op.create_index(op.f("ix_migration_runs_run_group"), "migration_runs", ["run_group"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_migration_runs_run_group"), table_name="migration_runs")
    # SQLite 3.35+ drops a column in place; a batch copy of the table would cascade its deletion
    # into the tracking tables that reference it
    op.execute("alter table migration_runs drop column run_group")
