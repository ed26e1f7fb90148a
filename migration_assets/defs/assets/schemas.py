"""The Pandera record schemas, shown in the Dagster UI as the column schemas of the record assets.

The records travel from the parse workers to the write in batches, never as one DataFrame, so
the schemas are shown as table schemas (each column with its rules) rather than as types. The
definitions show the built-in rules; each materialization of ``validated_records`` shows the
rules its run was under.
"""

import dagster as dg
import pandera.pandas as pa

from migration_assets.rules import ValidationRules, default_rules
from migration_assets.validation import PARSED_RECORD_SCHEMA, record_schema


def table_schema_of(schema: pa.DataFrameSchema, rules: ValidationRules | None = None) -> dg.TableSchema:
    """A Pandera schema as a Dagster table schema; with ``rules``, each column's constraints name
    the rules the schema was compiled from, with their severity."""
    columns = []
    for name, column in schema.columns.items():
        if rules is None:
            constraints = [str(check.error or check.name) for check in column.checks]
        else:
            constraints = [str(check.error or check.name) for check in PARSED_RECORD_SCHEMA.columns[name].checks]
            constraints += [f"{rule.id} ({rule.severity}): {rule.message}" for rule in rules.of(name)]
        if column.unique and rules is None:
            constraints.append("unique within a batch and a run")
        columns.append(
            dg.TableColumn(
                name=name,
                type=str(column.dtype) if column.dtype is not None else "object",
                description=column.description,
                constraints=dg.TableColumnConstraints(nullable=column.nullable, unique=column.unique, other=constraints),
            )
        )
    if rules is None:
        frame_rules = [str(c.error or c.name) for c in schema.checks]
    else:
        frame_rules = [f"{rule.id} ({rule.severity}): {rule.message}" for rule in rules.of(None)]
    return dg.TableSchema(columns=columns, constraints=dg.TableConstraints(other=frame_rules))


def validated_table_schema(rules: ValidationRules) -> dg.TableSchema:
    """The ``validated_records`` column schema of ``rules``: every rule in force, with its severity."""
    return table_schema_of(record_schema(rules), rules)


PARSED_TABLE_SCHEMA = table_schema_of(PARSED_RECORD_SCHEMA)
VALIDATED_TABLE_SCHEMA = validated_table_schema(default_rules().validation)
