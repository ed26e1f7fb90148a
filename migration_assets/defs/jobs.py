"""Jobs, one per use: a full migration, an incremental pass, validation only, a repair of the
derived tables, and the whole-target integrity checks.

Every job that writes the target carries the tag ``migration/writes-target`` (the deploy
config's run queue limits how many such runs go at once); runs started by the CLI, the API,
the sensor or the schedule also carry ``migration/source``, ``migration/mode`` and
``migration/launcher``.
"""

import json

import dagster as dg

from migration_assets import service
from migration_assets.defs.assets import GROUP
from migration_assets.defs.checks import WHOLE_TARGET_CHECKS
from migration_assets.defs.partitions import waves_partitions
from migration_assets.defs.resources import EmbeddingModel, MigrationResource, TargetDatabase

WRITES_TARGET = {"migration/writes-target": "true"}
MIGRATION_ASSETS = dg.AssetSelection.groups(GROUP) - dg.AssetSelection.checks(*WHOLE_TARGET_CHECKS)  # those run alone

migrate_job = dg.define_asset_job(
    "migrate",
    selection=MIGRATION_ASSETS,
    description="Migrate a wave of the source directory into the target: every asset from legacy_files to migration_report.",
    partitions_def=waves_partitions,
    tags=WRITES_TARGET,
)

incremental_job = dg.define_asset_job(
    "migrate_incremental",
    selection=MIGRATION_ASSETS,
    description="An incremental pass: a wave of the new, changed and drifted files only (a partition added by hand is planned so).",
    partitions_def=waves_partitions,
    config={"resources": {"migration": {"config": {"incremental": True}}}},
    tags={**WRITES_TARGET, "migration/mode": "incremental"},
)


@dg.op(description="Parse and validate the source under its rules; writes the validation report, nothing to the target.")
def validate_source_files(context: dg.OpExecutionContext, migration: MigrationResource) -> dg.Output[dict]:
    config, _ = migration.usable_settings()
    report = service.validate_source(config)
    path = config.backup_path / "validation_report.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    totals = {key: value for key, value in report.get("totals", {}).items() if isinstance(value, int)}
    context.log.info(f"validation of {config.source_path}: {totals}")
    return dg.Output(report, metadata={**{k: dg.MetadataValue.int(v) for k, v in totals.items()}, "report": dg.MetadataValue.path(str(path))})


@dg.job(description="Validation only: parse and validate the source, write validation_report.json; the target is not touched.")
def validate_only() -> None:
    validate_source_files()


@dg.op(description="Rebuild stale or missing knowledge chunks and vectors over the whole target, as a run that can be rolled back.")
def repair_derived_tables(
    context: dg.OpExecutionContext, migration: MigrationResource, target: TargetDatabase, embedding_model: EmbeddingModel
) -> dict:
    counts = service.repair_derived(migration.settings(), target.resolved_url(), context.run_id, embedding_model.load())
    context.log.info(f"repaired: {counts}")
    return counts


@dg.job(description="Repair the derived tables (knowledge_items, embeddings, short items' vectors) over the whole target.", tags=WRITES_TARGET)
def repair_derived() -> None:
    repair_derived_tables()


integrity_checks_job = dg.define_asset_job(
    "integrity_checks",
    selection=dg.AssetSelection.checks(*WHOLE_TARGET_CHECKS),
    description="The whole-target integrity checks (relationships, tracking drift), without materializing anything.",
)
