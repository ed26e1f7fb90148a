"""The spec's MigrationConfig: one source of truth for what a migration run does.

Plain pydantic, no Dagster: the Dagster resource, the CLI and the API all build one of these.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from migration_assets.rules import MigrationRules, load_rules

DEFAULT_DATABASE_URL = "sqlite:///.migration/migration.db"
"""Target database when ``DATABASE_URL`` is unset: a SQLite file under ``.migration/`` in
the working directory."""

DEFAULT_BACKUP_DIRECTORY = ".migration/backups"
SAMPLE_SOURCE_DIRECTORY = str(Path(__file__).parent / "sample_data" / "legacy")


def database_url_from_env() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def source_directory_from_env() -> str:
    return os.environ.get("MIGRATION_SOURCE_DIR") or SAMPLE_SOURCE_DIRECTORY


def backup_directory_from_env() -> str:
    return os.environ.get("MIGRATION_BACKUP_DIR") or DEFAULT_BACKUP_DIRECTORY


def embedding_provider_from_env() -> str:
    """The embedding provider's name (``embeddings.get_provider`` reads it):
    ``MIGRATION_EMBEDDING_PROVIDER``, ``hashing`` by default."""
    return os.environ.get("MIGRATION_EMBEDDING_PROVIDER") or "hashing"


def rules_file_from_env() -> str | None:
    return os.environ.get("MIGRATION_RULES_FILE") or None


MAX_BATCH_SIZE = 100_000
MAX_WORKERS = 64  # processes: more than any machine this runs on has cores, few enough not to bring it down
MAX_FILE_SIZE = 64 * 1024**3
MAX_WAVES = 64  # waves of one migrate --waves: runs in the queue at once
MAX_WRITE_CONNECTIONS = 8  # within the engine's pool (5 + 10 overflow), beside the run's own connections


class MigrationConfig(BaseModel):
    """What to migrate and how; field names and defaults follow the spec's table."""

    source_directory: str = Field(description="Folder holding the legacy content store.")
    backup_directory: str = Field(description="Folder for backups, reports and staging files.")
    batch_size: int = Field(default=100, ge=1, le=MAX_BATCH_SIZE, description="Source files per batch (one transaction each).")
    validate_data: bool = Field(default=True, description="Reject records that fail validation (they are recorded either way).")
    create_backups: bool = Field(default=True, description="Back up rows a run changes before it writes.")
    preserve_timestamps: bool = Field(default=True, description="Keep legacy created_at (else the file's mtime).")
    dry_run: bool = Field(default=False, description="Parse, validate and plan; write nothing to the target.")
    incremental: bool = Field(default=False, description="Skip files unchanged since their last migration.")
    max_file_size: int = Field(default=50 * 1024 * 1024, ge=1, le=MAX_FILE_SIZE, description="Largest file (bytes) that is processed.")
    skip_large_files: bool = Field(default=True, description="Skip files over max_file_size; when off they are processed anyway.")
    parallel_processing: bool = Field(default=False, description="Parse, validate, cut chunks and embed in process pools.")
    max_workers: int = Field(default=4, ge=1, le=MAX_WORKERS, description="Process pool size when parallel_processing is on.")
    wave_max_files: int = Field(default=10_000, ge=1, description="Most files in one wave (partition) planned by the sensor or schedule.")
    write_connections: int = Field(
        default=2,
        ge=1,
        le=MAX_WRITE_CONNECTIONS,
        description="PostgreSQL: batches written at once, each over a connection of its own (SQLite has one writer).",
    )
    prune_removed: bool = Field(default=False, description="Delete the records of files no longer in the source (that source only).")
    knowledge_min_chars: int = Field(default=500, ge=1, description="Content at least this long becomes knowledge items.")
    chunk_chars: int = Field(default=1200, ge=200, description="Target size of a knowledge chunk, in characters.")
    rules_file: str | None = Field(
        default=None,
        description="TOML or YAML rules file: which legacy fields fill which columns, and the validation rules (unset: the built-in rules).",
    )

    @property
    def source_path(self) -> Path:
        return Path(self.source_directory).expanduser().resolve()

    @property
    def backup_path(self) -> Path:
        return Path(self.backup_directory).expanduser().resolve()

    def load_rules(self) -> MigrationRules:
        """The rules of ``rules_file`` laid over the built-in ones; ``RulesError`` (one line naming
        the key and why) for a file that cannot be used."""
        return load_rules(self.rules_file)

    @property
    def worker_processes(self) -> int:
        """How many processes parse, validate, cut chunks and embed (1: the run's own)."""
        return self.max_workers if self.parallel_processing else 1
