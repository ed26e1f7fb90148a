"""Pandera schemas for legacy records, compiled from the rules in force, and batch validation that
names every failing record with the rule it breaks.

Validation is lazy and per batch (one ``validate`` call for many records): every failing record
is collected with every rule it breaks, each with its severity (``error`` blocks the record,
``warn`` lets it load with a warning), and valid records go on.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pandera.pandas as pa

from migration_assets.records import LegacyRecord, parse_iso
from migration_assets.rules import Rule, ValidationRules, default_rules
from migration_assets.sources.discovery import FORMATS

DUPLICATE_ID = "duplicate legacy_id"
"""The failure no setting lets through: the target cannot hold two records under one id."""
UNIQUE_RULE = "legacy_id.unique"
URL_ABSOLUTE = r"(?:https?|ftp)://[^\s/$.?#][^\s]*"
URL_PATTERNS = {
    "absolute": rf"^{URL_ABSOLUTE}$",
    # an absolute URL, one without its scheme (//host/path), or a reference within the site
    # (/commands/hugo/, about/, ../x, #top): anything without a scheme of its own or a space
    "absolute-or-site-relative": rf"^(?:{URL_ABSOLUTE}|//[^\s/]+[^\s]*|(?![A-Za-z][A-Za-z0-9+.\-]*:)[^\s]+)$",
}
TEXT_COLUMNS = ("legacy_id", "title", "content", "url", "type", "category")


class Violation(NamedTuple):
    """One rule a record breaks: the rule's id, its severity and what the record is told."""

    rule: str
    severity: str
    message: str


def blocks(violations: Sequence[Violation]) -> bool:
    return any(v.severity == "error" for v in violations)


class RuleTally:
    """Records rejected and loaded with a warning, per rule (a record that breaks two rules counts
    for each), counted as they come."""

    def __init__(self) -> None:
        self._counts: dict[str, Counter[str]] = defaultdict(Counter)

    def add(self, outcome: str, rules: Iterable[str] | None) -> None:
        """One record's ``outcome`` ("rejected" or "warned") under the ``rules`` it broke."""
        for rule in dict.fromkeys(rules or ()):
            self._counts[rule][outcome] += 1

    def merge(self, other: RuleTally) -> None:
        for rule, counts in other._counts.items():
            self._counts[rule].update(counts)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{rule: {"rejected": n, "warned": m}}``, most frequent first."""
        ordered = sorted(self._counts.items(), key=lambda item: (-sum(item[1].values()), item[0]))
        return {rule: {"rejected": c.get("rejected", 0), "warned": c.get("warned", 0)} for rule, c in ordered}


def _parseable_date(value: object) -> bool:
    return value is None or (isinstance(value, str) and parse_iso(value) is not None)


def _string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(tag, str) for tag in value)


PARSED_RECORD_SCHEMA = pa.DataFrameSchema(
    name="ParsedRecord",
    description="What a parser hands over: the unified record's fields, typed; nothing about their content yet.",
    columns={
        "legacy_id": pa.Column(str, description="Id from the legacy record (mapped), or a template of path and position."),
        "source_path": pa.Column(str, description="Path of the source file, relative to the source directory."),
        "source_format": pa.Column(str, checks=pa.Check.isin(sorted(set(FORMATS.values()))), description="Parser that read it."),
        "title": pa.Column(str, nullable=True, description="Title (Markdown/text: heading or file name when no mapped field has one)."),
        "content": pa.Column(str, nullable=True, description="The text."),
        "url": pa.Column(str, nullable=True),
        "created_at": pa.Column(object, nullable=True, description="ISO 8601 string, as normalised from the legacy value."),
        "type": pa.Column(str, nullable=True),
        "category": pa.Column(str, nullable=True),
        "tags": pa.Column(
            object,
            checks=[pa.Check(_string_list, element_wise=True, name="tags.type", error="tags must be a list of strings")],
            description="List of strings.",
        ),
    },
    strict=False,
    coerce=False,
)


def _has_value(values: pd.Series, column: str) -> pd.Series:
    """Whether each value counts as given: text that is not blank, a tag, a date."""
    if column == "tags":
        return values.map(lambda tags: bool(tags))
    if column == "created_at":
        return values.notna()
    return values.fillna("").astype(str).str.strip() != ""


def _each_tag(test: Callable[[str], bool]) -> Callable[[Any], bool]:
    return lambda tags: not isinstance(tags, list) or all(test(tag) for tag in tags if isinstance(tag, str))


def _check(rule: Rule) -> pa.Check:
    """The Pandera check of one column rule; its ``error`` is the rule's message (unique per rule)."""
    column, value, kind = rule.column or "", rule.value, rule.kind
    named: dict[str, Any] = {"name": rule.id, "error": rule.message}
    if kind == "required":
        return pa.Check(lambda s: _has_value(s, column), ignore_na=False, **named)
    if column == "tags":
        if kind in ("max_length", "width"):
            return pa.Check(_each_tag(lambda tag: len(tag) <= value), element_wise=True, **named)
        if kind == "pattern":
            compiled = re.compile(value)
            return pa.Check(_each_tag(lambda tag: compiled.search(tag) is not None), element_wise=True, **named)
        allowed = frozenset(value)
        return pa.Check(_each_tag(lambda tag: tag in allowed), element_wise=True, **named)
    if kind in ("max_length", "width"):
        return pa.Check.str_length(max_value=value, **named)
    if kind == "pattern":
        return pa.Check(lambda s: s.astype(str).str.contains(value, regex=True), **named)
    if kind == "allowed":
        return pa.Check.isin(list(value), **named)
    if kind == "policy":
        return pa.Check.str_matches(URL_PATTERNS[value], **named)
    if kind == "unparseable":
        return pa.Check(_parseable_date, element_wise=True, **named)
    raise ValueError(f"no check for rule {rule.id}")


def _record_check(rule: Rule) -> pa.Check:
    columns = list(rule.value)
    combine = np.logical_or if rule.kind == "require_any" else np.logical_and

    def check(frame: pd.DataFrame) -> pd.Series:
        result = _has_value(frame[columns[0]], columns[0])
        for column in columns[1:]:
            result = combine(result, _has_value(frame[column], column))
        return result

    return pa.Check(check, name=rule.id, error=rule.message)


class CompiledRules(NamedTuple):
    schema: pa.DataFrameSchema
    typed_schema: pa.DataFrameSchema  # text columns as pandas' string dtype: a column's type checked once
    by_message: dict[str, Rule]


@lru_cache(maxsize=8)
def compile_rules(rules: ValidationRules) -> CompiledRules:
    """The Pandera schema the rules compile to: the parsed record's types, a check per column rule
    and a frame-wide check per record rule. Each check's ``error`` is its rule's message."""
    updates: dict[str, dict[str, Any]] = {}
    for name in PARSED_RECORD_SCHEMA.columns:
        checks = [_check(rule) for rule in rules.of(name) if rule.kind != "unique"]
        if checks:
            updates[name] = {"checks": list(PARSED_RECORD_SCHEMA.columns[name].checks) + checks}
    updates["legacy_id"] = {**updates.get("legacy_id", {}), "unique": True, "report_duplicates": "exclude_first"}
    schema = pa.DataFrameSchema(
        name="LegacyRecord",
        description="A valid legacy record: the parsed record's types plus the rules in force (error: rejected, warn: loaded with a warning).",
        columns=PARSED_RECORD_SCHEMA.update_columns(updates).columns,  # type: ignore[arg-type]
        checks=[_record_check(rule) for rule in rules.of(None)],
        strict=False,
        coerce=False,
    )
    typed = schema.update_columns({name: {"dtype": pd.StringDtype("python")} for name in TEXT_COLUMNS})
    by_message = {rule.message: rule for rule in rules.rules}
    if len(by_message) != len(rules.rules):
        raise ValueError("two rules share a message; a failure could not be told apart")
    return CompiledRules(schema, typed, by_message)


def record_schema(rules: ValidationRules | None = None) -> pa.DataFrameSchema:
    """The ``LegacyRecord`` schema of ``rules`` (the built-in rules when None)."""
    return compile_rules(rules or default_rules().validation).schema


COLUMNS = list(PARSED_RECORD_SCHEMA.columns)
_POSITIONS = [LegacyRecord._fields.index(name) for name in COLUMNS]


def records_frame(records: Sequence[LegacyRecord], *, typed: bool = False) -> pd.DataFrame:
    """The columns the schema checks, one row per record, in order. ``typed``: text columns as
    pandas' string dtype, when every value in them is text or missing (else they stay objects)."""
    fields = list(zip(*records, strict=True)) if records else [()] * len(LegacyRecord._fields)
    data: dict[str, Any] = {}
    for name, position in zip(COLUMNS, _POSITIONS, strict=True):
        if typed and name in TEXT_COLUMNS:
            data[name] = pd.arrays.StringArray(np.array(fields[position], dtype=object))  # ValueError if a value is not text
        else:
            data[name] = list(fields[position])  # as objects: numpy would make lists of tags a second dimension
    return pd.DataFrame(data, columns=COLUMNS)


def validate_records(records: Sequence[LegacyRecord], rules: ValidationRules | None = None) -> dict[int, list[Violation]]:
    """Validate a batch in one call; return ``{position in batch: [violations]}`` for the records
    that break a rule (errors and warnings alike; ``blocks`` tells them apart)."""
    if not records:
        return {}
    compiled = compile_rules(rules or default_rules().validation)
    try:
        frame, schema = records_frame(records, typed=True), compiled.typed_schema
    except ValueError:  # a text column holds something else: checked value by value, each named
        frame, schema = records_frame(records), compiled.schema
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return _violations(exc.failure_cases, frame, compiled.by_message)
    return {}


def _preview(value: Any, rule: Rule | None) -> str:
    if rule is not None and rule.kind in ("max_length", "width") and isinstance(value, str):
        return f"{len(value)} characters"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _violations(failures: pd.DataFrame, frame: pd.DataFrame, by_message: dict[str, Rule]) -> dict[int, list[Violation]]:
    found: dict[int, list[Violation]] = defaultdict(list)
    for row in failures.itertuples(index=False):
        check = str(row.check)
        column = row.column if isinstance(row.column, str) and row.column != "LegacyRecord" else None
        rule = by_message.get(check)
        if check == "field_uniqueness":
            violation = Violation(UNIQUE_RULE, "error", f"{DUPLICATE_ID} within the batch")
        elif rule is not None:
            shown = rule.column is not None and rule.kind != "required" and row.failure_case is not None
            violation = Violation(rule.id, rule.severity, f"{rule.message}: got {_preview(row.failure_case, rule)}" if shown else rule.message)
        elif column and check.startswith(("dtype", "not_nullable")):
            violation = Violation(f"{column}.type", "error", f"{column}: wrong type or missing ({row.failure_case!r})")
        elif check == "tags must be a list of strings":
            violation = Violation("tags.type", "error", check)
        else:
            violation = Violation(f"{column or 'record'}.check", "error", check if " " in check else f"{column}: failed {check}")
        if pd.isna(row.index):
            # a column-wide failure: every record of the batch carries it
            for position in range(len(frame)):
                found[position].append(violation)
        else:
            position = int(row.index)
            if violation not in found[position]:
                found[position].append(violation)
    return dict(found)
