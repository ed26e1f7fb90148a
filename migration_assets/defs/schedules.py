"""Schedules: a daily incremental pass over the whole source directory; daily whole-target checks."""

import dagster as dg

from migration_assets.defs.jobs import integrity_checks_job, migrate_job
from migration_assets.defs.partitions import WAVES
from migration_assets.defs.resources import MigrationResource, TargetDatabase
from migration_assets.defs.sensors import wave_requests


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
    tags = {"migration/launcher": "schedule", "migration/mode": "incremental", "migration/source": source}
    return [dg.RunRequest(partition_key=key, run_key=key, tags=tags) for key in keys]


daily_integrity_checks = dg.ScheduleDefinition(
    name="daily_integrity_checks",
    job=integrity_checks_job,
    cron_schedule="0 5 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily at 05:00: the whole-target checks (relationships, tracking drift); reads, writes nothing.",
)
