"""Sensors: a failed Dagster run marks its ``migration_runs`` row failed, with the error."""

import dagster as dg

from migration_assets.resources import TargetDatabase
from migration_assets.store.runs import mark_failed


@dg.run_failure_sensor(description="Marks the migration_runs row of a failed run as failed, with its error.")
def record_failed_runs(context: dg.RunFailureSensorContext, target: TargetDatabase) -> None:
    message = context.failure_event.message or "run failed"
    mark_failed(target.engine(), context.dagster_run.run_id, message)
