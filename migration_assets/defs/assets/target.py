"""Completing the target: knowledge_items → embeddings (each repairs what the content's write left
stale), then the run report."""

import dataclasses

import dagster as dg

from migration_assets import integrity, service
from migration_assets.defs import checks
from migration_assets.defs.assets import GROUP, OWNERS, TARGET_TAGS
from migration_assets.defs.assets.metadata import counts_metadata, table_rows, timed_stage
from migration_assets.defs.partitions import waves_partitions
from migration_assets.defs.resources import EmbeddingModel, MigrationResource, TargetDatabase
from migration_assets.lifecycle import close_run
from migration_assets.memory import peak_rss_mb
from migration_assets.reports import run_totals, short_summary
from migration_assets.store.runs import update_stats
from migration_assets.store.tables import EMBEDDINGS, KNOWLEDGE


@dg.asset(group_name=GROUP, partitions_def=waves_partitions, kinds={"sql"}, deps=["content_items"], owners=OWNERS, tags=TARGET_TAGS)
def knowledge_items(context: dg.AssetExecutionContext, migration: MigrationResource, target: TargetDatabase) -> dg.MaterializeResult:
    """The ``knowledge_items`` table: content with substantial text, cut into chunks. The chunks are
    written with their content (``ingest_records``); this step rebuilds whatever is stale (content
    changed without a new parse, chunks missing after a crash) and drops the knowledge of content
    now too short."""
    with timed_stage(target, context.run_id, "knowledge_items") as figures:
        config = migration.settings()
        counts = service.knowledge_stage(target.engine(), context.run_id, config, service.journal_for(config, context.run_id, "knowledge"))
        figures.update(dataclasses.asdict(counts))
    return dg.MaterializeResult(
        metadata={
            **table_rows(target.engine(), context.run_id, KNOWLEDGE),  # most chunks are written with their content
            "chunks_rebuilt_here": counts.chunks,
            "items_rechunked_here": counts.items,
            "items_pruned": counts.removed_items,
        }
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=waves_partitions,
    kinds={"numpy", "sql"},
    owners=OWNERS,
    tags=TARGET_TAGS,
    deps=[knowledge_items],
    check_specs=[checks.RELATIONSHIPS, checks.EMBEDDINGS],
)
def embeddings(
    context: dg.AssetExecutionContext, migration: MigrationResource, target: TargetDatabase, embedding_model: EmbeddingModel
) -> dg.MaterializeResult:
    """The ``embeddings`` table: one vector per knowledge chunk, from the configured provider. The
    vectors are written with their content (``ingest_records``); this step embeds whatever chunk
    still lacks a vector from this provider, and gives each content item too short for chunks a
    vector of its own (``content_vectors``), so that search finds it by meaning too."""
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
        metadata={
            **table_rows(engine, context.run_id, EMBEDDINGS),  # most vectors are written with their content
            "embedded_here": counts.embedded,
            "replaced": counts.replaced,
            "short_items_embedded": counts.short_items,
            "model": provider.name,
            "dimension": provider.dimension,
        },
        check_results=[checks.as_check_result(r, partitions=context.partition_keys) for r in results],
    )


@dg.asset(group_name=GROUP, partitions_def=waves_partitions, kinds={"json"}, deps=[embeddings], owners=OWNERS, tags={"layer": "report"})
def migration_report(context: dg.AssetExecutionContext, migration: MigrationResource, target: TargetDatabase) -> dg.MaterializeResult:
    """``migration_report.json`` and ``migration_summary.txt`` in the backup directory: every file
    discovered, with its status (migrated / skipped / rejected), reason and record counts. The
    run's backup is sealed here (or the run is marked not reversible, and why)."""
    config = migration.settings()
    engine = target.engine()
    update_stats(engine, context.run_id, peak_rss_mb=peak_rss_mb())
    closed = close_run(
        engine,
        context.run_id,
        status="completed",
        database_url=target.resolved_url(),
        backup_directory=config.backup_path,
        create_backups=config.create_backups,
        partition_keys=context.partition_keys,
    )
    if closed.not_reversible and config.create_backups:
        context.log.warning(f"run {context.run_id} cannot be undone: {closed.not_reversible}")
    with engine.connect() as conn:
        totals = run_totals(conn, context.run_id)
    context.log.info(short_summary(engine, context.run_id))  # the run's closing line, as the CLI prints it
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.path(str(closed.report_path)),
            "summary": dg.MetadataValue.path(str(closed.summary_path)),
            "reversible": dg.MetadataValue.bool(closed.not_reversible is None),
            **counts_metadata({k: v for k, v in totals.items() if isinstance(v, int)}),
        }
    )
