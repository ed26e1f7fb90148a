"""run dependencies, and the process that runs each run

A run depends on another when it counted that run's rows as its own unchanged records, or
updated, deleted or built on them: rolling the other back needs this one undone first. Runs
from before dependencies were recorded are taken to depend on the run before them (by start
time), which is what rollback assumed of them until now.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_dependencies",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("depends_on", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "depends_on", name=op.f("pk_run_dependencies")),
    )
    with op.batch_alter_table("run_dependencies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_dependencies_depends_on"), ["depends_on"], unique=False)
    with op.batch_alter_table("migration_runs", schema=None) as batch_op:
        # {host, pid, started}: whether the process running it is still alive
        batch_op.add_column(sa.Column("process", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True))
    op.execute(
        "insert into run_dependencies (run_id, depends_on) "
        "select id, previous from (select id, lag(id) over (order by started_at, id) as previous from migration_runs where not dry_run) runs "
        "where previous is not null"
    )


def downgrade() -> None:
    with op.batch_alter_table("migration_runs", schema=None) as batch_op:
        batch_op.drop_column("process")
    with op.batch_alter_table("run_dependencies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_dependencies_depends_on"))
    op.drop_table("run_dependencies")
