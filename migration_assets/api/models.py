"""The API's request bodies and response envelopes, as pydantic models: they validate what comes
in (unknown fields refused, numbers bounded) and they are the OpenAPI document's schemas, so
the document says what the app does."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from migration_assets.config import MAX_BATCH_SIZE, MAX_FILE_SIZE, MAX_WORKERS, MAX_WRITE_CONNECTIONS, MigrationConfig


class Strict(BaseModel):
    """Unknown fields are refused, and values are not coerced: ``"true"`` is not a boolean, nor
    ``true`` a number."""

    model_config = ConfigDict(extra="forbid", strict=True)


class MigrationRequest(Strict):
    """The spec's MigrationConfig, whole; paths are absolute and must lie under an allowed root."""

    source_directory: str = Field(min_length=1, max_length=4096, description="Folder of the legacy content store.")
    backup_directory: str | None = Field(
        default=None, max_length=4096, description="Folder for backups and reports (default: $MIGRATION_BACKUP_DIR of the server)."
    )
    batch_size: int = Field(default=100, ge=1, le=MAX_BATCH_SIZE, description="Source files per batch (one transaction each).")
    validate_data: bool = Field(default=True, description="Reject records that fail validation (they are recorded either way).")
    create_backups: bool = Field(default=True, description="Back up rows a run changes before it writes (needed to roll it back).")
    preserve_timestamps: bool = Field(default=True, description="Keep legacy created_at (else the file's mtime).")
    dry_run: bool = Field(default=False, description="Plan, parse and validate; report the planned counts; write nothing.")
    incremental: bool = Field(default=False, description="Only new, changed and drifted files.")
    max_file_size: int = Field(default=50 * 1024 * 1024, ge=1, le=MAX_FILE_SIZE, description="Largest file processed, in bytes.")
    skip_large_files: bool = Field(default=True, description="Skip files over max_file_size.")
    parallel_processing: bool = Field(default=False, description="Parse, validate and embed in process pools.")
    max_workers: int = Field(default=4, ge=1, le=MAX_WORKERS, description="Size of those pools.")
    wave_max_files: int = Field(default=10_000, ge=1, le=10_000_000, description="Most files in one wave.")
    write_connections: int = Field(
        default=2, ge=1, le=MAX_WRITE_CONNECTIONS, description="PostgreSQL: batches written at once, each over its own connection."
    )
    prune_removed: bool = Field(default=False, description="Delete the records of files no longer in the source.")
    knowledge_min_chars: int = Field(default=500, ge=1, le=100_000_000, description="Content at least this long becomes knowledge items.")
    chunk_chars: int = Field(default=1200, ge=200, le=1_000_000, description="Target size of a knowledge chunk, in characters.")
    rules_file: str | None = Field(default=None, max_length=4096, description="TOML or YAML rules file (unset: the built-in rules).")


assert set(MigrationRequest.model_fields) == set(MigrationConfig.model_fields), "the API's request is the whole MigrationConfig"


class ValidateRequest(MigrationRequest):
    """What to validate: the same fields as a migration (the spec sends source and backup)."""


class RollbackRequest(Strict):
    cascade: bool = Field(default=False, description="Also roll back the runs built on this one, first.")
    dry_run: bool = Field(default=False, description="Only say what would be undone; change nothing.")


class ImportRequest(Strict):
    input_directory: str = Field(min_length=1, max_length=4096, description="Folder of an export (content_items.jsonl and manifest.json).")
    backup_directory: str | None = Field(default=None, max_length=4096, description="Backups and report (default: $MIGRATION_BACKUP_DIR).")
    validate_data: bool = Field(default=True, description="Reject lines that break the rules (else record and import them).")
    rules_file: str | None = Field(default=None, max_length=4096, description="TOML or YAML rules file.")


class Envelope(BaseModel):
    """Every success: what was done, and its document."""

    success: Literal[True]
    message: str
    data: dict[str, Any]
    timestamp: str


class ErrorDetails(BaseModel):
    model_config = ConfigDict(extra="allow")
    field_errors: dict[str, list[str]] | None = None


class ErrorEnvelope(BaseModel):
    """Every failure: a kind a program can branch on (``validation_error``, ``unauthorized``,
    ``forbidden``, ``not_found``, ``unknown_run``, ``refused``, ``conflict``,
    ``payload_too_large``, ``database_error``, ``internal_error``), a message, details."""

    success: Literal[False]
    error: str
    message: str
    details: ErrorDetails
    timestamp: str


ERRORS: dict[int | str, dict[str, Any]] = {"4XX": {"model": ErrorEnvelope, "description": "Refused: the error envelope."}}
SERVER_ERRORS: dict[int | str, dict[str, Any]] = {
    "5XX": {"model": ErrorEnvelope, "description": "The server or its database failed: the error envelope."}
}
