"""The migration's use cases, in plain Python: what the assets, the CLI and the API all call.

Each stage function takes the config, the target engine and the upstream stage's output,
and returns its own output with the figures worth showing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from migration_assets.config import MigrationConfig
from migration_assets.embeddings import EmbeddingProvider, get_provider
from migration_assets.ingest import ValidatedRecords, parse_stage, validate_stage
from migration_assets.inventory import FileInventory, take_inventory
from migration_assets.reports import validation_report
from migration_assets.store import derived, loader
from migration_assets.store.database import serialise_writes
from migration_assets.store.derived import EmbeddingCounts, KnowledgeCounts
from migration_assets.store.loader import LoadCounts
from migration_assets.waves import ensure_waves, finish_waves, plan_incremental, plan_waves, wave_inventory

__all__ = [
    "ensure_waves",
    "finish_waves",
    "plan_incremental",
    "plan_waves",
    "wave_inventory",
    "check_supported",
    "embedding_stage",
    "knowledge_stage",
    "load_stage",
    "parse_stage",
    "take_inventory",
    "validate_source",
    "validate_stage",
]

Progress = Callable[[int, int], None]


class NotAvailableYet(ValueError):
    """A MigrationConfig option whose behaviour has not landed yet; refused rather than ignored."""


def check_supported(config: MigrationConfig) -> None:
    """Refuse options that would otherwise be silently ignored."""
    for option in ("dry_run",):
        if getattr(config, option):
            raise NotAvailableYet(f"{option}=true is not available yet in this version; run without it")


def load_stage(
    engine: Engine,
    run_id: str,
    config: MigrationConfig,
    inventory: FileInventory,
    validated: ValidatedRecords,
    on_batch: Progress | None = None,
) -> LoadCounts:
    """Write every batch in its own transaction, plus the tracking rows of never-parsed files."""
    counts = LoadCounts()
    with engine.begin() as conn:
        serialise_writes(conn, "content")
        skipped = loader.record_ineligible_files(conn, run_id, inventory.files)
        counts.files.update(skipped)
        if config.prune_removed and inventory.removed:
            counts.pruned = loader.prune_removed_files(conn, run_id, inventory.root, inventory.removed)
    total = len(validated.parsed)
    for n, files in enumerate(validated.batches(), start=1):
        with engine.begin() as conn:
            serialise_writes(conn, "content")
            counts.add(
                loader.write_batch(
                    conn, run_id, files, source_root=inventory.root, preserve_timestamps=config.preserve_timestamps, dry_run=config.dry_run
                )
            )
        if on_batch:
            on_batch(n, total)
    return counts


def knowledge_stage(engine: Engine, run_id: str, config: MigrationConfig) -> KnowledgeCounts:
    return derived.refresh_knowledge_items(engine, run_id, min_chars=config.knowledge_min_chars, chunk_chars=config.chunk_chars)


def embedding_stage(engine: Engine, run_id: str, provider: EmbeddingProvider | None = None) -> EmbeddingCounts:
    return derived.refresh_embeddings(engine, run_id, provider or get_provider())


def config_summary(config: MigrationConfig) -> dict[str, Any]:
    return config.model_dump()


def validate_source(config: MigrationConfig) -> dict[str, Any]:
    """Parse and validate ``config.source_directory`` without touching any database."""
    inventory = take_inventory(config)
    with tempfile.TemporaryDirectory(prefix="migration-validate-") as scratch:
        scratch_config = config.model_copy(update={"backup_directory": scratch})
        validated = validate_stage(scratch_config, parse_stage(scratch_config, inventory, "validate"))
        return validation_report(inventory, validated)
