"""Jobs over the migration assets."""

from __future__ import annotations

import dagster as dg

MIGRATION_GROUP = "migration"

migrate_job = dg.define_asset_job(
    "migrate",
    selection=dg.AssetSelection.groups(MIGRATION_GROUP),
    description="Migrate the source directory into the target: every asset from legacy_files to migration_report.",
    executor_def=dg.in_process_executor,
)
