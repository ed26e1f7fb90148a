"""Schedules: a daily incremental pass over the whole source directory."""

import dagster as dg

from migration_assets.jobs import migrate_job
from migration_assets.partitions import WAVES
from migration_assets.resources import MigrationResource, TargetDatabase
from migration_assets.sensors import wave_requests


@dg.schedule(
    job=migrate_job,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily at 03:00: an incremental pass over the whole source directory, so nothing is missed while the sensor is off.",
)
def daily_incremental_pass(context: dg.ScheduleEvaluationContext, migration: MigrationResource, target: TargetDatabase):  # type: ignore[no-untyped-def]
    keys, source = wave_requests(migration, target)
    if not keys:
        return dg.SkipReason(f"nothing new or changed under {source}")
    context.instance.add_dynamic_partitions(WAVES, keys)
    return [dg.RunRequest(partition_key=key, run_key=key) for key in keys]
