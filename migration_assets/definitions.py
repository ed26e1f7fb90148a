"""The Dagster code location: assembles assets, jobs, sensors and resources. Nothing else."""

from __future__ import annotations

import dagster as dg

from migration_assets.assets import ingest, target
from migration_assets.jobs import migrate_job
from migration_assets.resources import default_resources
from migration_assets.schedules import daily_incremental_pass
from migration_assets.sensors import record_failed_runs, watch_source_directory

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ingest, target]),
    jobs=[migrate_job],
    sensors=[watch_source_directory, record_failed_runs],
    schedules=[daily_incremental_pass],
    resources=default_resources(),
    executor=dg.in_process_executor,
)
