"""The rules a migration runs under, as plain values: the field mapping and the validation rules,
with the hashes a run records. Built from a rules file by ``rules_file.load_rules``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from migration_assets.rules.mapping import FieldMapping

Severity = Literal["error", "warn"]
SEVERITIES = ("error", "warn")
URL_POLICIES = ("absolute", "absolute-or-site-relative", "any")
DATE_POLICIES = ("reject", "warn")
VALIDATED_COLUMNS = ("legacy_id", "title", "content", "url", "type", "category", "tags", "created_at")
COLUMN_WIDTHS = {"legacy_id": 512, "type": 100, "category": 255}
"""Columns the target cannot hold longer than this: a longer value is always an error."""


@dataclass(frozen=True)
class Rule:
    """One validation rule: ``id`` is ``<column>.<kind>`` (``record.<kind>`` for a record-level
    rule) and names it in reports; an ``error`` rejects its record, a ``warn`` loads it and
    records a warning."""

    id: str
    kind: str  # required, max_length, pattern, allowed, policy, unparseable, width, unique, require_any, require_all
    column: str | None
    value: Any
    severity: Severity

    @property
    def message(self) -> str:
        """What a record that breaks the rule is told (unique per rule: it also identifies it)."""
        column, value = self.column, self.value
        if self.kind == "required":
            return f"{column} is required" if column != "tags" else "tags are required (at least one)"
        if self.kind in ("max_length", "width"):
            limit = f"{value} characters" + (" (the column's width)" if self.kind == "width" else "")
            return f"a tag is longer than {limit}" if column == "tags" else f"{column} is longer than {limit}"
        if self.kind == "pattern":
            return f"{'a tag' if column == 'tags' else column} does not match {value!r}"
        if self.kind == "allowed":
            return f"{'a tag' if column == 'tags' else column} is not one of the allowed values"
        if self.kind == "policy":
            return "url is not an http(s) or ftp URL" if value == "absolute" else "url is neither an http(s)/ftp URL nor a site-relative path"
        if self.kind == "unparseable":
            return "created_at is not a parseable date" + (" (left empty, the raw value kept in metadata)" if self.severity == "warn" else "")
        if self.kind == "require_any":
            return "record has neither a title nor content" if tuple(value) == ("title", "content") else f"record has none of {', '.join(value)}"
        if self.kind == "require_all":
            return f"record lacks one of {', '.join(value)} (all are required)"
        if self.kind == "unique":
            return "duplicate legacy_id"
        return f"{self.id} failed"


@dataclass(frozen=True)
class ValidationRules:
    """Every validation rule in force, in a stable order."""

    rules: tuple[Rule, ...]

    def of(self, column: str | None) -> list[Rule]:
        return [rule for rule in self.rules if rule.column == column]

    def get(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def listing(self) -> list[dict[str, Any]]:
        """The rules as a report lists them."""
        return [
            {"rule": r.id, "value": list(r.value) if isinstance(r.value, tuple) else r.value, "severity": r.severity, "message": r.message}
            for r in self.rules
        ]


@dataclass(frozen=True)
class MigrationRules:
    """The field mapping and validation rules of a run, with where they came from and their hashes
    (of the effective rules, so a comment or a reordered file does not count as a change)."""

    source: str | None  # the rules file, None for the built-in defaults
    mapping: FieldMapping
    validation: ValidationRules
    document: dict[str, Any]  # the effective rules as plain data: the defaults with the file's settings over them
    hash: str
    mapping_hash: str
    validation_hash: str

    def summary(self) -> dict[str, Any]:
        """What a run records about its rules (``migration_runs.rules``) and what reports show:
        where they came from, their hashes, the field mapping and every validation rule in force."""
        return {
            "file": self.source,
            "hash": self.hash,
            "mapping_hash": self.mapping_hash,
            "validation_hash": self.validation_hash,
            "mapping": self.document["mapping"],
            "validation": self.validation.listing(),
        }
