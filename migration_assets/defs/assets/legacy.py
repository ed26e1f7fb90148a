"""Reading the legacy store and writing what it holds: legacy_files, then parsed_records →
validated_records → content_items in one pass."""

import multiprocessing
import time
from collections.abc import Iterator

import dagster as dg

from migration_assets import integrity, service
from migration_assets.defs import checks
from migration_assets.defs.assets import GROUP, OWNERS, SOURCE_TAGS, TARGET_TAGS, run_group
from migration_assets.defs.assets.metadata import counts_metadata, files_not_migrated, progress, table_preview, table_rows, throughput, timed_stage
from migration_assets.defs.assets.schemas import PARSED_TABLE_SCHEMA, VALIDATED_TABLE_SCHEMA, validated_table_schema
from migration_assets.defs.partitions import waves_partitions
from migration_assets.defs.resources import EmbeddingModel, MigrationResource, TargetDatabase
from migration_assets.inventory import FileInventory
from migration_assets.store.runs import start_run, update_stats
from migration_assets.store.tables import CONTENT


def run_process(context: dg.AssetExecutionContext) -> int | None:
    """The pid of the process that runs the whole run when it is not this step's (None): under the
    multiprocess executor each step is a child process of the run's, and ends long before the
    run. The run's ledger row names the process that lives as long as the run, or a step's end
    would read as the run killed."""
    if context.job_def.executor_def.name == dg.multiprocess_executor.name:
        parent = multiprocessing.parent_process()
        return parent.pid if parent is not None else None
    return None


@dg.asset(group_name=GROUP, partitions_def=waves_partitions, kinds={"python", "file"}, owners=OWNERS, tags=SOURCE_TAGS)
def legacy_files(context: dg.AssetExecutionContext, migration: MigrationResource, target: TargetDatabase) -> dg.Output[FileInventory]:
    """The files of this wave (partition): path, format, size, mtime, sha256, and whether each is
    eligible, too large, unsupported, unreadable or gone. A wave's files are fixed when it is
    planned (by the sensor, the schedule or the CLI; a partition added by hand is planned here)."""
    config, rules = migration.usable_settings()
    started = time.perf_counter()
    engine = target.engine()
    waves = service.ensure_waves(engine, config, context.partition_keys)
    inventory = service.wave_inventory(config, engine, waves)
    start_run(
        engine,
        context.run_id,
        source_directory=inventory.root,
        config=config.model_dump(),
        partition_key=",".join(context.partition_keys),
        group=run_group(context.run.tags),
        pid=run_process(context),
    )
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
            "rules_file": dg.MetadataValue.text(rules.source or "built-in defaults"),
            "preview": table_preview(rows, ["rel_path", "format", "size", "status", "reason"]),
        },
    )


@dg.multi_asset(
    name="ingest_records",
    specs=[
        dg.AssetSpec(
            "parsed_records",
            deps=["legacy_files"],
            group_name=GROUP,
            owners=OWNERS,
            tags=SOURCE_TAGS,
            kinds={"python", "pandera"},
            description="Records parsed from every eligible file (JSON, JSON Lines, Markdown, text, CSV); files that cannot be "
            "parsed carry their reason. Each record's knowledge chunks and vectors are derived where it is parsed.",
            metadata={"dagster/column_schema": PARSED_TABLE_SCHEMA},
        ),
        dg.AssetSpec(
            "validated_records",
            deps=["parsed_records"],
            group_name=GROUP,
            owners=OWNERS,
            tags=SOURCE_TAGS,
            kinds={"pandera"},
            description="Parsed records checked against the LegacyRecord schema compiled from the rules in force (rules_file), in "
            "the worker that parsed them; a record breaking a rule of severity error is kept with its reasons and does not go on "
            "(unless validate_data is off), one breaking only warn rules loads with a warning, and a legacy id already written by "
            "this run is refused. The column schema shown here is the built-in rules'; each materialization shows the rules its "
            "run was under, and its counts per rule.",
            metadata={"dagster/column_schema": VALIDATED_TABLE_SCHEMA},
        ),
        dg.AssetSpec(
            "content_items",
            deps=["validated_records"],
            group_name=GROUP,
            owners=OWNERS,
            tags=TARGET_TAGS,
            kinds={"sql"},
            description="The ``content_items`` table: valid records inserted or updated in place (never duplicated), with their "
            "``legacy_mappings``, knowledge chunks and vectors, and each file's ``migration_items`` row, one transaction per batch.",
        ),
    ],
    ins={"legacy_files": dg.AssetIn()},
    check_specs=[checks.RECONCILIATION, checks.DUPLICATE_CONTENT, checks.TRACKING_DRIFT],
    partitions_def=waves_partitions,
)
def ingest_records(
    context: dg.AssetExecutionContext,
    migration: MigrationResource,
    target: TargetDatabase,
    embedding_model: EmbeddingModel,
    legacy_files: FileInventory,
) -> Iterator[dg.MaterializeResult]:
    """Parse, validate and write the wave's files in one stream of batches: worker processes parse,
    check and derive the next batches while this step writes one (three assets, one pass: a
    staged hand-over between them would cost more than the parse itself)."""
    engine = target.engine()
    config = migration.settings()
    # a re-execution from this step runs under a new run id: it needs its ledger row too
    start_run(
        engine,
        context.run_id,
        source_directory=legacy_files.root,
        config=config.model_dump(),
        partition_key=",".join(context.partition_keys),
        group=run_group(context.run.tags),
        pid=run_process(context),
    )
    started = time.perf_counter()
    with timed_stage(target, context.run_id, "ingest_records") as figures:
        result = service.ingest_stage(
            engine,
            context.run_id,
            config,
            legacy_files,
            service.derivation_for(config, embedding_model.load),
            on_batch=progress(context, "written"),
            journal=service.journal_for(config, context.run_id, "content"),
        )
        figures.update(parsed=result.parsed, validated=result.validated, worker_peak_rss_mb=result.worker_peak_rss_mb, **result.loaded.as_dict())
    yield dg.MaterializeResult(
        asset_key="parsed_records",
        metadata={
            **counts_metadata(result.parsed),
            "preview": table_preview(result.parsed_examples, ["legacy_id", "format", "title", "source_path"]),
        },
    )
    yield dg.MaterializeResult(
        asset_key="validated_records",
        metadata={
            **counts_metadata(result.validated),
            "invalid_examples": table_preview(result.invalid_examples, ["source_path", "index", "reasons"]),
            "by_rule": dg.MetadataValue.json(result.by_rule.counts()),
            "rules_file": dg.MetadataValue.text(result.rules.source or "built-in defaults"),
            "rules_hash": dg.MetadataValue.text(result.rules.hash),
            "dagster/column_schema": validated_table_schema(result.rules.validation),
        },
    )
    checked = [
        integrity.check_reconciliation(
            engine,
            context.run_id,
            files_discovered=len(legacy_files.files),
            records_parsed=result.parsed["records"] + result.parsed["parse_rejected"],
        ),
        integrity.check_duplicate_content(engine, context.run_id),
        integrity.check_drift(engine, legacy_files.root),
    ]
    integrity.record_results(engine, context.run_id, checked)
    loaded = result.loaded.as_dict()
    yield dg.MaterializeResult(
        asset_key="content_items",
        metadata={
            **counts_metadata(loaded),
            **table_rows(engine, context.run_id, CONTENT),
            **throughput(len(legacy_files.files), result.parsed["records"], time.perf_counter() - started),
            **files_not_migrated(engine, context.run_id),
            "files": dg.MetadataValue.json(dict(result.loaded.files)),
            "target": dg.MetadataValue.text(target.display_url()),
        },
        check_results=[checks.as_check_result(r, partitions=context.partition_keys) for r in checked],
    )
