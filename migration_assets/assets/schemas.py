"""The Pandera record schemas, shown in the Dagster UI as the column schemas of the record assets.

The records travel from the parse workers to the write in batches, never as one DataFrame, so
the schemas are shown as table schemas (each column with its rules) rather than as types.
"""

import dagster as dg
import pandera.pandas as pa

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
