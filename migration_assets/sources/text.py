"""Plain text: the whole file is the content, the file name is the title."""

from __future__ import annotations

from pathlib import PurePosixPath

from migration_assets.records import LegacyRecord, RecordRejection, normalise_record, text_is_clean
from migration_assets.rules import RecordMapping
from migration_assets.sources.errors import FileRejected


def parse_text(text: str, rel_path: str, mapping: RecordMapping | None = None) -> tuple[list[LegacyRecord], list[RecordRejection]]:
    """The whole text is the body (``{body}``: the content), the file name the title."""
    if not text.strip():
        raise FileRejected("empty file")
    title = PurePosixPath(rel_path).stem
    record = normalise_record(
        {},
        source_path=rel_path,
        source_format="text",
        record_index=0,
        default_title=title,
        text_is_clean=text_is_clean(text),
        mapping=mapping,
        body=text,
    )
    if isinstance(record, RecordRejection):
        return [], [record]
    return [record], []
