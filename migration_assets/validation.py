"""Pandera schemas for legacy records, and batch validation that names every failing record.

Validation is lazy and per batch (one ``validate`` call for many records): every failing
record is collected with all its reasons, and valid records go on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from migration_assets.records import LegacyRecord, parse_iso
from migration_assets.sources.discovery import FORMATS

MAX_ID_CHARS = 512
MAX_TITLE_CHARS = 2_000
MAX_CONTENT_CHARS = 20_000_000
MAX_TYPE_CHARS = 100  # the widths of content_items' columns
MAX_CATEGORY_CHARS = 255
DUPLICATE_ID = "duplicate legacy_id"
"""The failure no setting lets through: the target cannot hold two records under one id."""
DUPLICATE_IN_BATCH = f"{DUPLICATE_ID} within the batch"
URL_PATTERN = r"^(https?|ftp)://[^\s/$.?#][^\s]*$"


def _has_text(df: pd.DataFrame) -> pd.Series:
    title = df["title"].fillna("").astype(str).str.strip() != ""
    content = df["content"].fillna("").astype(str).str.strip() != ""
    return title | content


def _parseable_date(value: object) -> bool:
    return value is None or (isinstance(value, str) and parse_iso(value) is not None)


def _string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(tag, str) for tag in value)


PARSED_RECORD_SCHEMA = pa.DataFrameSchema(
    name="ParsedRecord",
    description="What a parser hands over: the unified record's fields, typed; nothing about their content yet.",
    columns={
        "legacy_id": pa.Column(str, description="Id from the legacy record, or derived from path and position."),
        "source_path": pa.Column(str, description="Path of the source file, relative to the source directory."),
        "source_format": pa.Column(str, checks=pa.Check.isin(sorted(set(FORMATS.values()))), description="Parser that read it."),
        "title": pa.Column(str, nullable=True, description="Title (Markdown/text: heading or file name when missing)."),
        "content": pa.Column(str, nullable=True, description="The text."),
        "url": pa.Column(str, nullable=True),
        "created_at": pa.Column(object, nullable=True, description="ISO 8601 string, as normalised from the legacy value."),
        "type": pa.Column(str, nullable=True),
        "category": pa.Column(str, nullable=True),
        "tags": pa.Column(object, description="List of strings."),
    },
    strict=False,
    coerce=False,
)

_CONTENT_RULES: dict[str, dict[str, object]] = {
    "legacy_id": {
        "checks": [pa.Check.str_length(1, MAX_ID_CHARS, error=f"legacy_id must be 1 to {MAX_ID_CHARS} characters")],
        "unique": True,
        "report_duplicates": "exclude_first",
    },
    "title": {"checks": [pa.Check.str_length(max_value=MAX_TITLE_CHARS, error=f"title is longer than {MAX_TITLE_CHARS} characters")]},
    "content": {"checks": [pa.Check.str_length(max_value=MAX_CONTENT_CHARS, error=f"content is longer than {MAX_CONTENT_CHARS} characters")]},
    "url": {"checks": [pa.Check.str_matches(URL_PATTERN, error="url is not an http(s) or ftp URL")]},
    "created_at": {"checks": [pa.Check(_parseable_date, element_wise=True, error="created_at is not a parseable date")]},
    "type": {"checks": [pa.Check.str_length(max_value=MAX_TYPE_CHARS, error=f"type is longer than {MAX_TYPE_CHARS} characters")]},
    "category": {"checks": [pa.Check.str_length(max_value=MAX_CATEGORY_CHARS, error=f"category is longer than {MAX_CATEGORY_CHARS} characters")]},
    "tags": {"checks": [pa.Check(_string_list, element_wise=True, error="tags must be a list of strings")]},
}

RECORD_SCHEMA = pa.DataFrameSchema(
    name="LegacyRecord",
    description="A valid legacy record: the parsed record's types plus the content rules a record must meet to be loaded.",
    columns=PARSED_RECORD_SCHEMA.update_columns(_CONTENT_RULES).columns,  # type: ignore[arg-type]
    checks=[pa.Check(_has_text, error="record has neither a title nor content")],
    strict=False,
    coerce=False,
)
"""The schema validation applies (it includes every rule of ``PARSED_RECORD_SCHEMA``)."""

COLUMNS = list(RECORD_SCHEMA.columns)
_TEXT_COLUMNS = frozenset(name for name, column in RECORD_SCHEMA.columns.items() if str(column.dtype) == "str")
_FAST_SCHEMA = RECORD_SCHEMA.update_columns({name: {"dtype": pd.StringDtype("python")} for name in _TEXT_COLUMNS})
"""``RECORD_SCHEMA`` with its text columns as pandas' string dtype: the same rules, but a column's
type is checked once instead of value by value. For a frame whose text columns hold only text."""
_POSITIONS = [LegacyRecord._fields.index(name) for name in COLUMNS]


def records_frame(records: Sequence[LegacyRecord], *, typed: bool = False) -> pd.DataFrame:
    """The columns the schema checks, one row per record, in order. ``typed``: text columns as
    pandas' string dtype, when every value in them is text or missing (else they stay objects)."""
    fields = list(zip(*records, strict=True)) if records else [()] * len(LegacyRecord._fields)
    data: dict[str, Any] = {}
    for name, position in zip(COLUMNS, _POSITIONS, strict=True):
        if typed and name in _TEXT_COLUMNS:
            data[name] = pd.arrays.StringArray(np.array(fields[position], dtype=object))  # ValueError if a value is not text
        else:
            data[name] = list(fields[position])  # as objects: numpy would make lists of tags a second dimension
    return pd.DataFrame(data, columns=COLUMNS)


def validate_records(records: Sequence[LegacyRecord]) -> dict[int, list[str]]:
    """Validate a batch in one call; return ``{position in batch: [reasons]}`` for failing records."""
    if not records:
        return {}
    try:
        frame, schema = records_frame(records, typed=True), _FAST_SCHEMA
    except ValueError:  # a text column holds something else: checked value by value, each named
        frame, schema = records_frame(records), RECORD_SCHEMA
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return _reasons(exc.failure_cases, frame)
    return {}


def _reasons(failures: pd.DataFrame, frame: pd.DataFrame) -> dict[int, list[str]]:
    reasons: dict[int, list[str]] = defaultdict(list)
    for row in failures.itertuples(index=False):
        check = str(row.check)
        column = row.column if isinstance(row.column, str) and row.column != "LegacyRecord" else None
        if check == "field_uniqueness":
            message = DUPLICATE_IN_BATCH
        elif column and check.startswith(("dtype", "not_nullable")):
            message = f"{column}: wrong type or missing ({row.failure_case!r})"
        elif column:
            message = f"{check}" if " " in check else f"{column}: failed {check}"
        else:
            message = check
        if pd.isna(row.index):
            # a column-wide failure: every record of the batch carries it
            for position in range(len(frame)):
                reasons[position].append(message)
        else:
            position = int(row.index)
            if message not in reasons[position]:
                reasons[position].append(message)
    return dict(reasons)
