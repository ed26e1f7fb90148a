"""Reading the legacy store: legacy_files → parsed_records → validated_records."""

import time

import dagster as dg

from migration_assets import service
from migration_assets.assets.metadata import counts_metadata, progress, table_preview, timed_stage
from migration_assets.assets.schemas import PARSED_TABLE_SCHEMA, VALIDATED_TABLE_SCHEMA, ParsedRecordBatches, ValidatedRecordBatches
from migration_assets.ingest import ValidatedRecords
from migration_assets.inventory import FileInventory
from migration_assets.partitions import waves_partitions
from migration_assets.resources import EmbeddingModel, MigrationResource, TargetDatabase
from migration_assets.staging import StagedBatches, read_batch
from migration_assets.store.runs import start_run, update_stats

GROUP = "migration"


@dg.asset(group_name=GROUP, partitions_def=waves_partitions, kinds={"python", "file"})
def legacy_files(context: dg.AssetExecutionContext, migration: MigrationResource, target: TargetDatabase) -> dg.Output[FileInventory]:
    """The files of this wave (partition): path, format, size, mtime, sha256, and whether each is
    eligible, too large, unsupported, unreadable or gone. A wave's files are fixed when it is
    planned (by the sensor, the schedule or the CLI; a partition added by hand is planned here)."""
    config = migration.settings()
    service.check_supported(config)
    started = time.perf_counter()
    engine = target.engine()
    waves = service.ensure_waves(engine, config, context.partition_keys)
    inventory = service.wave_inventory(config, engine, waves)
    start_run(engine, context.run_id, source_directory=inventory.root, config=config.model_dump(), partition_key=",".join(context.partition_keys))
    update_stats(engine, context.run_id, legacy_files={"seconds": round(time.perf_counter() - started, 3), **inventory.counts()})
    rows = [{**f._asdict(), "status": f.status.value} for f in inventory.files[:10]]  # the preview's
    return dg.Output(
        inventory,
        metadata={
            **counts_metadata(inventory.counts()),
            "bytes": dg.MetadataValue.int(inventory.total_bytes()),
            "formats": dg.MetadataValue.json(inventory.formats()),
            "source_directory": dg.MetadataValue.path(inventory.root),
            "wave_mode": dg.MetadataValue.text(",".join(sorted({w.mode for w in waves}))),
            "unchanged_files_not_in_wave": dg.MetadataValue.int(inventory.unchanged_count),
            "removed_files": dg.MetadataValue.int(len(inventory.removed)),
            "preview": table_preview(rows, ["rel_path", "format", "size", "status", "reason"]),
        },
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=waves_partitions,
    kinds={"python", "pandera"},
    dagster_type=ParsedRecordBatches,
    metadata={"dagster/column_schema": PARSED_TABLE_SCHEMA},
)
def parsed_records(
    context: dg.AssetExecutionContext,
    migration: MigrationResource,
    target: TargetDatabase,
    embedding_model: EmbeddingModel,
    legacy_files: FileInventory,
) -> dg.Output[StagedBatches]:
    """Records parsed from every eligible file (JSON, JSON Lines, Markdown, text, CSV), staged in
    batches on disk; files that cannot be parsed carry their reason. Each record's knowledge
    chunks and vectors are derived here too, while it is in memory, and written with it."""
    config = migration.settings()
    with timed_stage(target, context.run_id, "parsed_records") as figures:
        derivation = service.derivation_for(config, embedding_model.load)
        staged = service.parse_stage(config, legacy_files, context.run_id, on_batch=progress(context, "parsed"), derivation=derivation)
        figures.update(staged.counts)
    preview: list[dict[str, object]] = []
    if staged.files:
        for _, parsed in read_batch(staged.files[0]):
            preview += [{"legacy_id": r.legacy_id, "format": r.source_format, "title": r.title, "source_path": r.source_path} for r in parsed.records]
    return dg.Output(
        staged,
        metadata={
            **counts_metadata(staged.counts),
            "batches": dg.MetadataValue.int(len(staged)),
            "preview": table_preview(preview, ["legacy_id", "format", "title", "source_path"]),
        },
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=waves_partitions,
    kinds={"pandera"},
    dagster_type=ValidatedRecordBatches,
    metadata={"dagster/column_schema": VALIDATED_TABLE_SCHEMA},
)
def validated_records(
    context: dg.AssetExecutionContext, migration: MigrationResource, target: TargetDatabase, parsed_records: StagedBatches
) -> dg.Output[ValidatedRecords]:
    """Parsed records checked against the LegacyRecord schema, batch by batch (the check runs in
    the worker that parsed the batch, while its records are in memory); every failing record is
    kept with its reasons and does not go on (unless validate_data is off), and a legacy id seen
    in an earlier batch is refused here."""
    with timed_stage(target, context.run_id, "validated_records") as figures:
        validated = service.validate_stage(migration.settings(), parsed_records)
        figures.update(validated.counts)
    examples = [
        {"source_path": path, "index": index, "reasons": "; ".join(reasons)}
        for verdicts in validated.invalid.values()
        for (path, index), reasons in verdicts.items()
    ]
    return dg.Output(
        validated,
        metadata={**counts_metadata(validated.counts), "invalid_examples": table_preview(examples, ["source_path", "index", "reasons"])},
    )
