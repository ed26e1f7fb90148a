"""Sensors: new work in the source directory becomes waves; failed runs are marked failed."""

import dagster as dg

from migration_assets import service
from migration_assets.jobs import migrate_job
from migration_assets.partitions import waves_partitions
from migration_assets.resources import MigrationResource, TargetDatabase
from migration_assets.store.runs import mark_failed


def wave_requests(migration: MigrationResource, target: TargetDatabase) -> tuple[list[str], str]:
    """Plan bounded waves of the source's new, changed and drifted files; returns their keys."""
    config = migration.settings().model_copy(update={"incremental": True})
    waves = service.plan_waves(target.engine(), config, max_files=config.wave_max_files)
    return [w.partition_key for w in waves], str(config.source_path)


@dg.sensor(
    job=migrate_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches MIGRATION_SOURCE_DIR: new, changed or drifted files become a new wave (partition) and its run is "
    "requested. Files already in a wave that has not been migrated yet are left to that wave.",
)
def watch_source_directory(context: dg.SensorEvaluationContext, migration: MigrationResource, target: TargetDatabase) -> dg.SensorResult:
    keys, source = wave_requests(migration, target)
    if not keys:
        return dg.SensorResult(skip_reason=dg.SkipReason(f"nothing new or changed under {source}"))
    context.log.info(f"new waves {keys} under {source}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=key) for key in keys],
        dynamic_partitions_requests=[waves_partitions.build_add_request(keys)],
    )


@dg.run_failure_sensor(description="Marks the migration_runs row of a failed run as failed, with its error.")
def record_failed_runs(context: dg.RunFailureSensorContext, target: TargetDatabase) -> None:
    message = context.failure_event.message or "run failed"
    mark_failed(target.engine(), context.dagster_run.run_id, message)
