"""Jobs over the migration assets."""

import dagster as dg

from migration_assets.partitions import waves_partitions

MIGRATION_GROUP = "migration"

migrate_job = dg.define_asset_job(
    "migrate",
    selection=dg.AssetSelection.groups(MIGRATION_GROUP),
    description="Migrate the source directory into the target: every asset from legacy_files to migration_report.",
    executor_def=dg.in_process_executor,
    partitions_def=waves_partitions,
)
