"""The Dagster code location: assembles assets, jobs, sensors and resources. Nothing else."""

from __future__ import annotations

import dagster as dg

from migration_assets.defs.catalog import ASSETS
from migration_assets.defs.checks import WHOLE_TARGET_CHECKS
from migration_assets.defs.executors import executor_from_env
from migration_assets.defs.jobs import incremental_job, integrity_checks_job, migrate_job, repair_derived, validate_only
from migration_assets.defs.resources import default_resources
from migration_assets.defs.schedules import daily_incremental_pass, daily_integrity_checks
from migration_assets.defs.sensors import record_failed_runs, watch_source_directory

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=WHOLE_TARGET_CHECKS,
    jobs=[migrate_job, incremental_job, validate_only, repair_derived, integrity_checks_job],
    sensors=[watch_source_directory, record_failed_runs],
    schedules=[daily_incremental_pass, daily_integrity_checks],
    resources=default_resources(),
    executor=executor_from_env(),  # unset MIGRATION_EXECUTOR: in the run's own process
)
