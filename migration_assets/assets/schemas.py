"""The Pandera record schemas, shown in the Dagster UI as the types of the record assets.

The record assets hand over staged batch files, not DataFrames, so their Dagster types check
the handle (every staged batch is on disk) and carry the Pandera schema as a table schema;
the assets also declare it as their column schema.
"""

from typing import Any

import dagster as dg
import pandera.pandas as pa

from migration_assets.ingest import ValidatedRecords
from migration_assets.staging import StagedBatches
from migration_assets.validation import PARSED_RECORD_SCHEMA, RECORD_SCHEMA


def table_schema_of(schema: pa.DataFrameSchema) -> dg.TableSchema:
    columns = []
    for name, column in schema.columns.items():
        rules = [check.error or check.name for check in column.checks]
        if column.unique:
            rules.append("unique within a batch and a run")
        columns.append(
            dg.TableColumn(
                name=name,
                type=str(column.dtype) if column.dtype is not None else "object",
                description=column.description,
                constraints=dg.TableColumnConstraints(nullable=column.nullable, unique=column.unique, other=[str(r) for r in rules]),
            )
        )
    return dg.TableSchema(columns=columns, constraints=dg.TableConstraints(other=[str(c.error or c.name) for c in schema.checks]))


PARSED_TABLE_SCHEMA = table_schema_of(PARSED_RECORD_SCHEMA)
VALIDATED_TABLE_SCHEMA = table_schema_of(RECORD_SCHEMA)


def _staged_files_present(staged: StagedBatches) -> dg.TypeCheck:
    from pathlib import Path

    missing = [path for path in staged.files if not Path(path).exists()]
    return dg.TypeCheck(
        success=not missing,
        description=f"{len(missing)} staged batch files are missing" if missing else f"{len(staged.files)} staged batches",
        metadata={"missing": dg.MetadataValue.json(missing[:20])} if missing else {},
    )


def _check_parsed(_context: Any, value: Any) -> dg.TypeCheck:
    if not isinstance(value, StagedBatches):
        return dg.TypeCheck(success=False, description=f"expected StagedBatches, got {type(value).__name__}")
    return _staged_files_present(value)


def _check_validated(_context: Any, value: Any) -> dg.TypeCheck:
    if not isinstance(value, ValidatedRecords):
        return dg.TypeCheck(success=False, description=f"expected ValidatedRecords, got {type(value).__name__}")
    return _staged_files_present(value.parsed)


ParsedRecordBatches = dg.DagsterType(
    name="ParsedRecordBatches",
    type_check_fn=_check_parsed,
    description=f"Batches of parsed records on disk. Pandera schema {PARSED_RECORD_SCHEMA.name}: {PARSED_RECORD_SCHEMA.description}",
    metadata={"schema": dg.MetadataValue.table_schema(PARSED_TABLE_SCHEMA)},
)

ValidatedRecordBatches = dg.DagsterType(
    name="ValidatedRecordBatches",
    type_check_fn=_check_validated,
    description=f"Parsed batches with validation verdicts. Pandera schema {RECORD_SCHEMA.name}: {RECORD_SCHEMA.description}",
    metadata={"schema": dg.MetadataValue.table_schema(VALIDATED_TABLE_SCHEMA)},
)
