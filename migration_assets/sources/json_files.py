"""JSON (one object, or an array of objects) and JSON Lines parsers."""

from __future__ import annotations

import json
from typing import Any

from migration_assets.records import LegacyRecord, RecordRejection, normalise_record, text_is_clean
from migration_assets.rules import RecordMapping
from migration_assets.sources.errors import FileRejected

Parsed = tuple[list[LegacyRecord], list[RecordRejection]]


DUPLICATE_KEYS = "legacy:duplicate_keys"


def _keep_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys repeat keeps the last value, as JSON parsers do, and the
    earlier ones under ``legacy:duplicate_keys`` instead of losing them silently."""
    obj: dict[str, Any] = {}
    earlier: dict[str, list[Any]] = {}
    for key, value in pairs:
        if key in obj:
            earlier.setdefault(key, []).append(obj[key])
        obj[key] = value
    if earlier:
        obj[DUPLICATE_KEYS] = earlier
    return obj


def _load(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_keep_duplicates)
    except json.JSONDecodeError as exc:
        raise FileRejected(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise FileRejected("malformed JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise FileRejected(f"malformed JSON: {exc}") from None


def _collect(items: list[tuple[int, Any]], rel_path: str, fmt: str, clean: bool, mapping: RecordMapping | None) -> Parsed:
    records: list[LegacyRecord] = []
    rejections: list[RecordRejection] = []
    for index, item in items:
        if not isinstance(item, dict):
            rejections.append(RecordRejection(rel_path, index, f"expected a JSON object, got {type(item).__name__}", raw=_preview(item)))
            continue
        result = normalise_record(item, source_path=rel_path, source_format=fmt, record_index=index, text_is_clean=clean, mapping=mapping)
        (records if isinstance(result, LegacyRecord) else rejections).append(result)  # type: ignore[arg-type]
    return records, rejections


def _preview(item: Any) -> str:
    try:
        return json.dumps(item, default=str)[:500]
    except (ValueError, RecursionError):
        return repr(item)[:500]


def parse_json(text: str, rel_path: str, mapping: RecordMapping | None = None) -> Parsed:
    """One object is one record; an array holds one record per element."""
    if not text.strip():
        raise FileRejected("empty file")
    data = _load(text)
    if isinstance(data, dict):
        return _collect([(0, data)], rel_path, "json", text_is_clean(text, json_escapes=True), mapping)
    if isinstance(data, list):
        if not data:
            raise FileRejected("empty JSON array")
        return _collect(list(enumerate(data)), rel_path, "json", text_is_clean(text, json_escapes=True), mapping)
    raise FileRejected(f"top-level JSON value is {type(data).__name__}, expected an object or an array of objects")


def parse_jsonl(text: str, rel_path: str, mapping: RecordMapping | None = None) -> Parsed:
    """One object per line; a bad line is rejected alone (its record index is its line number)."""
    items: list[tuple[int, Any]] = []
    rejections: list[RecordRejection] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((lineno, json.loads(line, object_pairs_hook=_keep_duplicates)))
        except json.JSONDecodeError as exc:
            rejections.append(RecordRejection(rel_path, lineno, f"malformed JSON on line {lineno}: {exc.msg}", raw=line[:500]))
        except RecursionError:
            rejections.append(RecordRejection(rel_path, lineno, f"JSON on line {lineno} nested too deeply", raw=line[:500]))
        except ValueError as exc:
            rejections.append(RecordRejection(rel_path, lineno, f"JSON on line {lineno} cannot be read: {exc}", raw=line[:500]))
    if not items and not rejections:
        raise FileRejected("empty file")
    records, more = _collect(items, rel_path, "jsonl", text_is_clean(text, json_escapes=True), mapping)
    return records, rejections + more
