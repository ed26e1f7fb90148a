"""The Dagster code location: assembles assets, jobs, sensors and resources. Nothing else."""

from __future__ import annotations

import dagster as dg

from migration_assets.assets import ingest, target
from migration_assets.jobs import migrate_job
from migration_assets.resources import default_resources
from migration_assets.sensors import record_failed_runs

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ingest, target]),
    jobs=[migrate_job],
    sensors=[record_failed_runs],
    resources=default_resources(),
    executor=dg.in_process_executor,
)
