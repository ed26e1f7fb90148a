"""CSV exports: delimiter sniffed from the header (``,`` or ``;``), headers mapped to fields."""

from __future__ import annotations

import csv
import io
import sys

from migration_assets.records import LegacyRecord, RecordRejection, normalise_record, text_is_clean
from migration_assets.rules import RecordMapping
from migration_assets.sources.errors import FileRejected

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def sniff_delimiter(header_line: str) -> str:
    """The delimiter of a legacy export: whichever of ``;`` and ``,`` splits the header into more
    columns (quotes respected), ``,`` on a tie."""
    columns = {}
    for delimiter in ",;":
        try:
            columns[delimiter] = len(next(csv.reader([header_line], delimiter=delimiter), []))
        except csv.Error:
            columns[delimiter] = 0
    return ";" if columns[";"] > columns[","] else ","


def _unique_names(header: list[str]) -> list[str]:
    """Column names as keys: an empty one becomes ``column_N``, a repeated one ``name_N``, so no cell is dropped."""
    names: list[str] = []
    for position, name in enumerate(header, start=1):
        candidate = name or f"column_{position}"
        if candidate in names:
            candidate = f"{candidate}_{position}"
        names.append(candidate)
    return names


def parse_csv(text: str, rel_path: str, mapping: RecordMapping | None = None) -> tuple[list[LegacyRecord], list[RecordRejection]]:
    """One record per data row; a row whose width differs from the header's is rejected alone."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise FileRejected("empty file")
    header_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(header_line))
    clean = text_is_clean(text)
    records: list[LegacyRecord] = []
    rejections: list[RecordRejection] = []
    try:
        header = [h.strip() for h in next(reader)]
        if not any(header):
            raise FileRejected("CSV header row is empty")
        header = _unique_names(header)
        for index, row in enumerate(reader):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                reason = f"row {index + 1} has {len(row)} fields, the header has {len(header)}"
                rejections.append(RecordRejection(rel_path, index, reason, raw="\x1f".join(row)[:500]))
                continue
            fields = {name: (cell if cell != "" else None) for name, cell in zip(header, row, strict=True)}
            result = normalise_record(fields, source_path=rel_path, source_format="csv", record_index=index, text_is_clean=clean, mapping=mapping)
            (records if isinstance(result, LegacyRecord) else rejections).append(result)  # type: ignore[arg-type]
    except csv.Error as exc:
        raise FileRejected(f"malformed CSV at line {reader.line_num}: {exc}") from None
    if not records and not rejections:
        raise FileRejected("CSV has a header but no rows")
    return records, rejections
