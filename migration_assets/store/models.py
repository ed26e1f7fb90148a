"""The target schema as typed SQLAlchemy models. Table names are a contract: users query them.

Alembic (``store/migrations``) owns the schema; these models document it and are what the
code reads and writes through.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import numpy as np
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from migration_assets.store.types import JSONDocument, Vector

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONDocument, list[str]: JSONDocument}


class MigrationRun(Base):
    """One execution of the pipeline; its id is the Dagster run id."""

    __tablename__ = "migration_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))  # running | completed | failed | rolled_back
    source_directory: Mapped[str] = mapped_column(Text)
    partition_key: Mapped[str | None] = mapped_column(String(255))
    run_group: Mapped[str | None] = mapped_column(String(255), index=True)  # the waves run together: `migrate --waves`, a UI backfill
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rules: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)  # the rules file and hashes it ran under
    process: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)  # {host, pid, started}: is it still alive?
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ContentItem(Base):
    """A migrated legacy record: the unified content store's main table."""

    __tablename__ = "content_items"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    legacy_id: Mapped[str] = mapped_column(String(512), unique=True)
    source_root: Mapped[str] = mapped_column(Text, server_default="")  # the source directory it came from
    source_path: Mapped[str] = mapped_column(Text, index=True)  # relative to source_root
    source_format: Mapped[str] = mapped_column(String(20))
    title: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(100))
    category: Mapped[str | None] = mapped_column(String(255))
    tags: Mapped[list[str]] = mapped_column(default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))  # not indexed: see migration 0005
    record_hash: Mapped[str] = mapped_column(String(64))
    content_length: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    migrated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    run_id: Mapped[str] = mapped_column(String(64), index=True)


class KnowledgeItem(Base):
    """A chunk of a content item with substantial text, the unit that is embedded and searched."""

    __tablename__ = "knowledge_items"
    __table_args__ = (UniqueConstraint("content_item_id", "chunk_index"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    content_item_id: Mapped[int] = mapped_column(ForeignKey("content_items.id", ondelete="CASCADE"))
    chunk_index: Mapped[int] = mapped_column(Integer)
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    source_hash: Mapped[str] = mapped_column(String(64))  # record_hash of the item version it was cut from
    run_id: Mapped[str] = mapped_column(String(64))


class Embedding(Base):
    """One vector per knowledge chunk."""

    __tablename__ = "embeddings"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    knowledge_item_id: Mapped[int] = mapped_column(ForeignKey("knowledge_items.id", ondelete="CASCADE"), unique=True)
    model: Mapped[str] = mapped_column(String(100))
    dimension: Mapped[int] = mapped_column(Integer)
    vector: Mapped[np.ndarray] = mapped_column(Vector)
    run_id: Mapped[str] = mapped_column(String(64))


class ContentVector(Base):
    """A vector for a content item with no knowledge chunk (too short to be cut), made from its
    title and text, so that search finds it by meaning too. It belongs to the version of the item
    it was made from (``record_hash``): search uses it only while the item is that version. The
    latest earlier version's vector is kept beside the current one, so a rollback to it finds
    its vector again."""

    __tablename__ = "content_vectors"
    __table_args__ = (UniqueConstraint("content_item_id", "model", "record_hash"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)  # never reused: the search index sees every change
    content_item_id: Mapped[int] = mapped_column(ForeignKey("content_items.id", ondelete="CASCADE"), index=True)
    record_hash: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(100))
    dimension: Mapped[int] = mapped_column(Integer)
    vector: Mapped[np.ndarray] = mapped_column(Vector)
    run_id: Mapped[str] = mapped_column(String(64))


class LegacyMapping(Base):
    """Legacy id → the content item it became."""

    __tablename__ = "legacy_mappings"

    legacy_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    content_item_id: Mapped[int] = mapped_column(ForeignKey("content_items.id", ondelete="CASCADE"), index=True)
    source_path: Mapped[str] = mapped_column(Text)
    run_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MigrationItem(Base):
    """One source file in one run: its fingerprint, what happened to it and why."""

    __tablename__ = "migration_items"
    __table_args__ = (UniqueConstraint("run_id", "source_path"), Index(None, "source_path"))

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("migration_runs.id", ondelete="CASCADE"))
    source_path: Mapped[str] = mapped_column(Text)
    source_format: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))  # migrated | skipped | rejected
    reason: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime: Mapped[float] = mapped_column(Float)
    sha256: Mapped[str | None] = mapped_column(String(64))
    encoding: Mapped[str | None] = mapped_column(String(20))
    records_found: Mapped[int] = mapped_column(Integer, default=0)
    records_inserted: Mapped[int] = mapped_column(Integer, default=0)
    records_updated: Mapped[int] = mapped_column(Integer, default=0)
    records_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    records_rejected: Mapped[int] = mapped_column(Integer, default=0)


class RejectedRecord(Base):
    """A record that was not migrated, kept with its reason so nothing is silently dropped."""

    __tablename__ = "rejected_records"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("migration_runs.id", ondelete="CASCADE"), index=True)
    source_path: Mapped[str] = mapped_column(Text)
    record_index: Mapped[int] = mapped_column(Integer)
    legacy_id: Mapped[str | None] = mapped_column(String(512))
    stage: Mapped[str] = mapped_column(String(20))  # parse | validate | load
    reason: Mapped[str] = mapped_column(Text)
    rules: Mapped[list[str] | None] = mapped_column(JSONDocument)  # ids of the rules it broke (url.policy, ...)
    raw: Mapped[str | None] = mapped_column(Text)


class RecordWarning(Base):
    """A rule a loaded record breaks: one of severity ``warn``, or any with ``validate_data`` off."""

    __tablename__ = "record_warnings"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("migration_runs.id", ondelete="CASCADE"), index=True)
    source_path: Mapped[str] = mapped_column(Text)
    record_index: Mapped[int] = mapped_column(Integer)
    legacy_id: Mapped[str | None] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(Text)
    rules: Mapped[list[str] | None] = mapped_column(JSONDocument)


class JournalTransaction(Base):
    """A write transaction whose backup journal entries count: committed in the same
    transaction as the writes, so a rollback undoes exactly what was committed."""

    __tablename__ = "journal_transactions"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tx: Mapped[str] = mapped_column(String(64), primary_key=True)


class RunDependency(Base):
    """Run ``run_id`` counted rows of run ``depends_on`` as its own unchanged records, or updated,
    deleted or built on them: ``depends_on`` cannot be rolled back while ``run_id`` stands."""

    __tablename__ = "run_dependencies"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    depends_on: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class MigrationWave(Base):
    """A partition of the migration: source files discovered together, migrated by one run.

    Its file list is fixed when it is planned, so re-materializing the partition processes
    the same files again (idempotently) and new files always go to new waves.
    """

    __tablename__ = "migration_waves"

    partition_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    source_root: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(20))  # full | incremental
    status: Mapped[str] = mapped_column(String(20))  # planned | completed | failed
    files: Mapped[list[str]] = mapped_column(default=list)
    file_count: Mapped[int] = mapped_column(Integer)
    unchanged_count: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    run_id: Mapped[str | None] = mapped_column(String(64))


class DataIntegrityCheck(Base):
    """The result of one integrity check for one run."""

    __tablename__ = "data_integrity_checks"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    check_name: Mapped[str] = mapped_column(String(100))
    passed: Mapped[bool] = mapped_column(Boolean)
    severity: Mapped[str] = mapped_column(String(10))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MigrationBackup(Base):
    """A backup file written before a run changed the target."""

    __tablename__ = "migration_backups"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def table_of(model: type[Base]) -> Table:
    """The Core table of a model, typed as one (for bulk statements)."""
    return cast(Table, model.__table__)


class AuditEntry(Base):
    """A request to the REST API that changed something, or that was refused: who (the token's
    name and role), what, on which run, with which parameters (secrets removed), and how it ended."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(100))  # the token's name; none for a request without a valid token
    role: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(100))  # e.g. "POST /api/v1/migration/start"
    target_run: Mapped[str | None] = mapped_column(String(64), index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    outcome: Mapped[str] = mapped_column(String(20))  # succeeded | failed | refused
    status_code: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    client: Mapped[str | None] = mapped_column(String(100))  # the client's address
