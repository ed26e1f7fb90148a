"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import migration_assets.store.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "content_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("legacy_id", sa.String(length=512), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("source_format", sa.String(length=20), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("category", sa.String(length=255), nullable=True),
        sa.Column("tags", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("metadata", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.Column("content_length", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("migrated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_items")),
        sa.UniqueConstraint("legacy_id", name=op.f("uq_content_items_legacy_id")),
    )
    with op.batch_alter_table("content_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_content_items_content_hash"), ["content_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_content_items_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_content_items_source_path"), ["source_path"], unique=False)

    op.create_table(
        "data_integrity_checks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("check_name", sa.String(length=100), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("details", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_integrity_checks")),
    )
    with op.batch_alter_table("data_integrity_checks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_integrity_checks_run_id"), ["run_id"], unique=False)

    op.create_table(
        "migration_backups",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_migration_backups")),
    )
    with op.batch_alter_table("migration_backups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_migration_backups_run_id"), ["run_id"], unique=False)

    op.create_table(
        "migration_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("source_directory", sa.Text(), nullable=False),
        sa.Column("partition_key", sa.String(length=255), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("config", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("stats", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_migration_runs")),
    )
    op.create_table(
        "knowledge_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("content_item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("source_hash", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["content_item_id"], ["content_items.id"], name=op.f("fk_knowledge_items_content_item_id_content_items"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_items")),
        sa.UniqueConstraint("content_item_id", "chunk_index", name=op.f("uq_knowledge_items_content_item_id_chunk_index")),
    )
    op.create_table(
        "legacy_mappings",
        sa.Column("legacy_id", sa.String(length=512), nullable=False),
        sa.Column("content_item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["content_item_id"], ["content_items.id"], name=op.f("fk_legacy_mappings_content_item_id_content_items"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("legacy_id", name=op.f("pk_legacy_mappings")),
    )
    with op.batch_alter_table("legacy_mappings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_legacy_mappings_content_item_id"), ["content_item_id"], unique=False)

    op.create_table(
        "migration_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("source_format", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.Float(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("encoding", sa.String(length=20), nullable=True),
        sa.Column("records_found", sa.Integer(), nullable=False),
        sa.Column("records_inserted", sa.Integer(), nullable=False),
        sa.Column("records_updated", sa.Integer(), nullable=False),
        sa.Column("records_unchanged", sa.Integer(), nullable=False),
        sa.Column("records_rejected", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["migration_runs.id"], name=op.f("fk_migration_items_run_id_migration_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_migration_items")),
        sa.UniqueConstraint("run_id", "source_path", name=op.f("uq_migration_items_run_id_source_path")),
    )
    with op.batch_alter_table("migration_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_migration_items_source_path"), ["source_path"], unique=False)

    op.create_table(
        "rejected_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("record_index", sa.Integer(), nullable=False),
        sa.Column("legacy_id", sa.String(length=512), nullable=True),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["migration_runs.id"], name=op.f("fk_rejected_records_run_id_migration_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_records")),
    )
    with op.batch_alter_table("rejected_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rejected_records_run_id"), ["run_id"], unique=False)

    op.create_table(
        "embeddings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("knowledge_item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("vector", migration_assets.store.types.Vector(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["knowledge_item_id"], ["knowledge_items.id"], name=op.f("fk_embeddings_knowledge_item_id_knowledge_items"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embeddings")),
        sa.UniqueConstraint("knowledge_item_id", name=op.f("uq_embeddings_knowledge_item_id")),
    )


def downgrade() -> None:
    op.drop_table("embeddings")
    with op.batch_alter_table("rejected_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rejected_records_run_id"))

    op.drop_table("rejected_records")
    with op.batch_alter_table("migration_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_migration_items_source_path"))

    op.drop_table("migration_items")
    with op.batch_alter_table("legacy_mappings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_legacy_mappings_content_item_id"))

    op.drop_table("legacy_mappings")
    op.drop_table("knowledge_items")
    op.drop_table("migration_runs")
    with op.batch_alter_table("migration_backups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_migration_backups_run_id"))

    op.drop_table("migration_backups")
    with op.batch_alter_table("data_integrity_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_integrity_checks_run_id"))

    op.drop_table("data_integrity_checks")
    with op.batch_alter_table("content_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_content_items_source_path"))
        batch_op.drop_index(batch_op.f("ix_content_items_run_id"))
        batch_op.drop_index(batch_op.f("ix_content_items_content_hash"))

    op.drop_table("content_items")
