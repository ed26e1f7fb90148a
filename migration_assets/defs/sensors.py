"""Sensors: new work in the source directory becomes waves; failed runs are closed (marked failed
with their step's error, backup sealed, report written)."""

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

from migration_assets import service
from migration_assets.defs.jobs import migrate_job
from migration_assets.defs.partitions import waves_partitions
from migration_assets.defs.resources import MigrationResource, TargetDatabase
from migration_assets.lifecycle import close_failed_run
from migration_assets.runner import step_error
from migration_assets.store.database import get_engine


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
        run_requests=[
            dg.RunRequest(
                partition_key=key, run_key=key, tags={"migration/launcher": "sensor", "migration/mode": "incremental", "migration/source": source}
            )
            for key in keys
        ],
        dynamic_partitions_requests=[waves_partitions.build_add_request(keys)],
    )


def run_target_url(run_config: Mapping[str, Any]) -> str | None:
    """The target a run was given in its own config (a URL, or ``{env: VARIABLE}``), if any."""
    url = ((run_config.get("resources") or {}).get("target") or {}).get("config", {}).get("url")
    if isinstance(url, Mapping):
        return os.environ.get(str(url.get("env"))) or None
    return url if isinstance(url, str) and url else None


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Closes a failed run as every run is closed (lifecycle.close_run): its migration_runs row failed, with the "
    "failing step's own error; its backup sealed; its report written.",
)
def record_failed_runs(context: dg.RunFailureSensorContext, target: TargetDatabase) -> None:
    run_id = context.dagster_run.run_id
    failures = context.instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    events = [record.event_log_entry.dagster_event for record in failures]
    error = step_error([event for event in events if event is not None]) or context.failure_event.message or "run failed"
    url = run_target_url(context.dagster_run.run_config) or target.resolved_url()
    closed = close_failed_run(get_engine(url), run_id, error, database_url=url)
    context.log.info(f"run {run_id} closed as failed: {error}" if closed else f"run {run_id} was closed already")
