"""The rules a migration runs under: which legacy fields fill which columns (``mapping``) and what
a record must meet to be loaded (validation rules), from a TOML or YAML rules file laid over the
built-in defaults (``defaults.toml``). No Dagster, no database."""

from migration_assets.rules.mapping import COLUMNS, FieldMapping, RecordContext, RecordMapping
from migration_assets.rules.model import MigrationRules, Rule, Severity, ValidationRules
from migration_assets.rules.rules_file import DEFAULTS_FILE, RulesError, default_rules, load_rules

__all__ = [
    "COLUMNS",
    "DEFAULTS_FILE",
    "FieldMapping",
    "MigrationRules",
    "RecordContext",
    "RecordMapping",
    "Rule",
    "RulesError",
    "Severity",
    "ValidationRules",
    "default_rules",
    "load_rules",
]
