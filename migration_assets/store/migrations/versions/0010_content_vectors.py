"""vectors for content items too short to become knowledge items

``content_vectors``: one vector per content item version (``record_hash``) and model, for the
items that have no knowledge chunk, so that semantic search finds them too. Ids are never
reused (SQLite ``AUTOINCREMENT``), so an in-memory index sees every change by its ids.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
VECTOR = sa.LargeBinary().with_variant(postgresql.ARRAY(sa.REAL()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "content_vectors",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("content_item_id", ID, nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("vector", VECTOR, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["content_item_id"], ["content_items.id"], name=op.f("fk_content_vectors_content_item_id_content_items"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_vectors")),
        sa.UniqueConstraint("content_item_id", "model", "record_hash", name=op.f("uq_content_vectors_content_item_id_model_record_hash")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_content_vectors_content_item_id"), "content_vectors", ["content_item_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_content_vectors_content_item_id"), table_name="content_vectors")
    op.drop_table("content_vectors")
