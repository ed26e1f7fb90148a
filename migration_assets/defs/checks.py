"""Asset checks: the integrity checks of ``integrity.py`` declared on the assets they guard.

They are evaluated inside the asset's own step (``check_specs``), so each run — and each
partition — checks exactly what it materialized, and every result is in
``data_integrity_checks`` before the report is written.
"""

from collections.abc import Sequence

import dagster as dg

from migration_assets import integrity
from migration_assets.defs.resources import MigrationResource, TargetDatabase
from migration_assets.integrity import IntegrityResult

RECONCILIATION = dg.AssetCheckSpec(
    "reconciliation",
    asset="content_items",
    blocking=True,
    description="Files discovered = migrated + skipped + rejected, records parsed = loaded + rejected, and every loaded record "
    "is in content_items. ERROR, blocks knowledge_items and embeddings.",
)
DUPLICATE_CONTENT = dg.AssetCheckSpec(
    "duplicate_content",
    asset="content_items",
    description="The same non-empty content under different legacy ids, among the items of this run's files. WARN, lists the groups.",
)
TRACKING_DRIFT = dg.AssetCheckSpec(
    "tracking_drift",
    asset="content_items",
    description="Files migrated earlier whose rows are gone from content_items (deleted by hand, say). WARN; such files are "
    "migrated again by the next run, never counted unchanged.",
)
RELATIONSHIPS = dg.AssetCheckSpec(
    "relationships",
    asset="embeddings",
    description="Every knowledge item has its content item, every embedding its knowledge chunk, every content item its legacy mapping. ERROR.",
)
EMBEDDINGS = dg.AssetCheckSpec(
    "embeddings",
    asset="embeddings",
    description="Every knowledge chunk is embedded; this run's vectors have the model's dimension and are finite. ERROR.",
)


def as_check_result(result: IntegrityResult, check_name: str | None = None, partitions: Sequence[str] = ()) -> dg.AssetCheckResult:
    """``result`` as Dagster shows it; ``partitions``: the waves the run checked (shown with it)."""
    severity = dg.AssetCheckSeverity.ERROR if result.severity == "ERROR" else dg.AssetCheckSeverity.WARN
    metadata = {"message": dg.MetadataValue.text(result.message), "details": dg.MetadataValue.json(result.details)}
    if partitions:
        metadata["partition"] = dg.MetadataValue.text(", ".join(partitions))
    return dg.AssetCheckResult(
        check_name=check_name or result.name, passed=result.passed, severity=severity, description=result.message, metadata=metadata
    )


@dg.asset_check(
    asset="embeddings",
    name="target_relationships",
    description="The whole target, whichever runs wrote it: every knowledge item has its content item, every embedding its "
    "chunk, every content item its legacy mapping. ERROR. Run by the integrity_checks job (and its schedule).",
)
def target_relationships(target: TargetDatabase) -> dg.AssetCheckResult:
    return as_check_result(integrity.check_relationships(target.engine()), "target_relationships")


@dg.asset_check(
    asset="content_items",
    name="target_tracking_drift",
    description="The whole source directory: files migrated earlier whose rows are gone from content_items. WARN; the next "
    "incremental run migrates them again. Run by the integrity_checks job (and its schedule).",
)
def target_tracking_drift(migration: MigrationResource, target: TargetDatabase) -> dg.AssetCheckResult:
    return as_check_result(integrity.check_drift(target.engine(), str(migration.settings().source_path)), "target_tracking_drift")


WHOLE_TARGET_CHECKS = [target_relationships, target_tracking_drift]
