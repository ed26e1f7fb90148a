"""the rules of a run, and the rules each rejection and warning broke

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # migration_runs.rules: {file, hash, mapping_hash, validation_hash}; null for runs from before
    # rules were recorded (their rules count as unknown: the next incremental run re-evaluates)
    with op.batch_alter_table("migration_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rules", _json(), nullable=True))
    # the ids of the rules a record broke (url.policy, record.require_any, ...): reports count by them
    with op.batch_alter_table("rejected_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rules", _json(), nullable=True))
    with op.batch_alter_table("record_warnings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rules", _json(), nullable=True))


def downgrade() -> None:
    for table in ("record_warnings", "rejected_records", "migration_runs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("rules")
