"""One entry point for every format: a source file in, records and rejections out."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from migration_assets.records import LegacyRecord, RecordRejection
from migration_assets.rules import MigrationRules, RecordMapping, default_rules
from migration_assets.sources.csv_files import parse_csv
from migration_assets.sources.decoding import BinaryContent, decode_bytes
from migration_assets.sources.discovery import SourceFile
from migration_assets.sources.errors import FileRejected
from migration_assets.sources.json_files import parse_json, parse_jsonl
from migration_assets.sources.markdown import parse_markdown
from migration_assets.sources.text import parse_text

Parser = Callable[[str, str, RecordMapping], tuple[list[LegacyRecord], list[RecordRejection]]]
PARSERS: dict[str, Parser] = {
    "json": parse_json,
    "jsonl": parse_jsonl,
    "markdown": parse_markdown,
    "text": parse_text,
    "csv": parse_csv,
}


@dataclass
class ParsedFile:
    """What one file yielded: its records, the records it could not give, or why it failed whole."""

    rel_path: str
    format: str
    encoding: str | None = None
    sha256: str | None = None  # of the bytes parsed (the inventory leaves new files unread)
    records: list[LegacyRecord] = field(default_factory=list)
    rejections: list[RecordRejection] = field(default_factory=list)
    error: str | None = None


def parse_file(root: Path, source: SourceFile, rules: MigrationRules | None = None) -> ParsedFile:
    """Parse one eligible file, its fields mapped to columns as ``rules`` say (the built-in rules
    when None); never raises for bad input, only reports it."""
    outcome = ParsedFile(source.rel_path, source.format)
    path = root / source.rel_path
    try:
        data = path.read_bytes()
        after = path.stat()
    except OSError as exc:
        outcome.error = f"cannot be read: {exc.strerror or exc}"
        return outcome
    if (after.st_size, after.st_mtime) != (source.size, source.mtime) or len(data) != source.size:
        # written to while we looked: never half-migrate it; its new fingerprint re-queues it
        outcome.error = "changed while being migrated (size or mtime differ from its inventory); the next run picks it up"
        return outcome
    outcome.sha256 = hashlib.sha256(data).hexdigest()
    try:
        text, outcome.encoding = decode_bytes(data)
        mapping = (rules or default_rules()).mapping.for_path(source.rel_path)
        outcome.records, outcome.rejections = PARSERS[source.format](text, source.rel_path, mapping)
    except (BinaryContent, FileRejected) as exc:
        outcome.error = str(exc)
    except RecursionError:
        outcome.error = "content nested too deeply to parse"
    except Exception as exc:  # noqa: BLE001 - a backstop: bad input rejects its file, never the run
        outcome.records, outcome.rejections = [], []
        outcome.error = f"cannot be parsed ({type(exc).__name__}: {exc})"
    return outcome
