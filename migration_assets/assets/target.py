"""Completing the target: knowledge_items → embeddings (each repairs what the content's write left
stale), then the run report."""

import dataclasses

import dagster as dg

from migration_assets import checks, integrity, service
from migration_assets.assets.metadata import counts_metadata, timed_stage
from migration_assets.backup import seal_backup
from migration_assets.memory import peak_rss_mb
from migration_assets.partitions import waves_partitions
from migration_assets.reports import build_report, write_report
from migration_assets.resources import EmbeddingModel, MigrationResource, TargetDatabase
from migration_assets.store.runs import finish_run, update_stats

GROUP = "migration"


@dg.asset(group_name=GROUP, partitions_def=waves_partitions, kinds={"sql"}, deps=["content_items"])
def knowledge_items(context: dg.AssetExecutionContext, migration: MigrationResource, target: TargetDatabase) -> dg.MaterializeResult:
    """The ``knowledge_items`` table: content with substantial text, cut into chunks. The chunks are
    written with their content (``ingest_records``); this step rebuilds whatever is stale (content
    changed without a new parse, chunks missing after a crash) and drops the knowledge of content
    now too short."""
    with timed_stage(target, context.run_id, "knowledge_items") as figures:
        config = migration.settings()
        counts = service.knowledge_stage(target.engine(), context.run_id, config, service.journal_for(config, context.run_id, "knowledge"))
        figures.update(dataclasses.asdict(counts))
    return dg.MaterializeResult(metadata={"items_chunked": counts.items, "chunks_written": counts.chunks, "items_pruned": counts.removed_items})


@dg.asset(
    group_name=GROUP,
    partitions_def=waves_partitions,
    kinds={"numpy", "sql"},
    deps=[knowledge_items],
    check_specs=[checks.RELATIONSHIPS, checks.EMBEDDINGS],
)
def embeddings(
    context: dg.AssetExecutionContext, migration: MigrationResource, target: TargetDatabase, embedding_model: EmbeddingModel
) -> dg.MaterializeResult:
    """The ``embeddings`` table: one vector per knowledge chunk, from the configured provider. The
    vectors are written with their content (``ingest_records``); this step embeds whatever chunk
    still lacks a vector from this provider."""
    provider = embedding_model.load()
    engine = target.engine()
    with timed_stage(target, context.run_id, "embeddings") as figures:
        config = migration.settings()
        journal = service.journal_for(config, context.run_id, "embeddings")
        counts = service.embedding_stage(engine, context.run_id, provider, journal, workers=config.worker_processes)
        figures.update(dataclasses.asdict(counts))
    results = [integrity.check_relationships(engine), integrity.check_embeddings(engine, context.run_id, dimension=provider.dimension)]
    integrity.record_results(engine, context.run_id, results)
    return dg.MaterializeResult(
        metadata={"embedded": counts.embedded, "replaced": counts.replaced, "model": provider.name, "dimension": provider.dimension},
        check_results=[checks.as_check_result(r) for r in results],
    )


@dg.asset(group_name=GROUP, partitions_def=waves_partitions, kinds={"json"}, deps=[embeddings])
def migration_report(context: dg.AssetExecutionContext, migration: MigrationResource, target: TargetDatabase) -> dg.MaterializeResult:
    """``migration_report.json`` and ``migration_summary.txt`` in the backup directory: every file
    discovered, with its status (migrated / skipped / rejected), reason and record counts."""
    config = migration.settings()
    engine = target.engine()
    update_stats(engine, context.run_id, peak_rss_mb=peak_rss_mb())
    if config.create_backups:
        seal_backup(engine, context.run_id, config.backup_path, target.url)
    finish_run(engine, context.run_id, "completed")
    service.finish_waves(engine, context.partition_keys, context.run_id, "completed")
    report = build_report(engine, context.run_id)
    report_path, summary_path = write_report(report, config.backup_path)
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.path(str(report_path)),
            "summary": dg.MetadataValue.path(str(summary_path)),
            **counts_metadata({k: v for k, v in report["totals"].items() if isinstance(v, int)}),
        }
    )
