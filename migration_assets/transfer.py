"""Export of the current content to JSON Lines with checksums, and import back from such an export.

An import is a run like a migration: the manifest verified whole, every line checked against
the same rules (one record per line; a bad line is rejected alone, with its reasons), batches
written all or nothing, journaled so that the import can be undone. Knowledge items and
embeddings are derived from content, so an import rebuilds them rather than trusting copies.
Plain Python, no Dagster.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select

from migration_assets.backup import Journal, canonical_url, sha256_file
from migration_assets.records import LegacyRecord, json_safe, parse_iso, sha256_text
from migration_assets.rules import MigrationRules, default_rules
from migration_assets.sources.discovery import FORMATS
from migration_assets.store.bulk import bulk_insert, reserve_ids
from migration_assets.store.database import serialise_writes
from migration_assets.store.dependencies import depend_on_runs
from migration_assets.store.loader import insert_isolating_failures, map_inserted_items
from migration_assets.store.models import utcnow
from migration_assets.store.retry import retry_transient
from migration_assets.store.tables import CONTENT, REJECTED, WARNINGS
from migration_assets.validation import DUPLICATE_ID, UNIQUE_RULE, RuleTally, Violation, blocks, validate_records

CONTENT_FILE = "content_items.jsonl"
MANIFEST_FILE = "manifest.json"
EXPORTED = [c.key for c in CONTENT.columns if c.key not in ("id", "run_id")]
TEXT_COLUMNS = ("title", "content", "url", "content_type", "category")
COMPARED = ("source_root", "source_path", "source_format", *TEXT_COLUMNS, "tags", "metadata", "created_at", "record_hash")
"""What makes an imported row the same as the one in the target (the hashes claimed are not trusted)."""
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


class ExportError(RuntimeError):
    """An export that cannot be trusted (checksum mismatch, missing file, a manifest that is not one)."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        # SQLite hands times back without their zone; everything is stored in UTC
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()
    return value


def export_content(engine: Engine, output: Path, database_url: str, batch_size: int = 2000) -> dict[str, Any]:
    """Write every content item to ``OUTPUT/content_items.jsonl`` and a manifest with its sha256."""
    output.mkdir(parents=True, exist_ok=True)
    path = output / CONTENT_FILE
    rows = 0
    last_id = 0
    with engine.connect() as conn, open(path, "w", encoding="utf-8") as fh:
        while True:
            batch = conn.execute(select(CONTENT).where(CONTENT.c.id > last_id).order_by(CONTENT.c.id).limit(batch_size)).mappings().all()
            if not batch:
                break
            last_id = batch[-1]["id"]
            for row in batch:
                fh.write(json.dumps({key: _jsonable(row[key]) for key in EXPORTED}, ensure_ascii=False, sort_keys=True) + "\n")
            rows += len(batch)
    manifest = {
        "exported_at": utcnow().isoformat(),
        "database_url": canonical_url(database_url),
        "files": [{"name": CONTENT_FILE, "sha256": sha256_file(path), "rows": rows}],
    }
    (output / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return manifest


def verify_export(source: Path) -> tuple[Path, int]:
    """The export's content file and its line count, once the manifest is verified whole: it
    names exactly the content file, with a sha256 and a row count that both match.
    ``ExportError`` otherwise."""
    manifest_path = source / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ExportError(f"{manifest_path} is not a readable export manifest: {exc}") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list) or not files:
        raise ExportError(f"{manifest_path} lists no files; refusing to import what nothing vouches for")
    names = [entry.get("name") if isinstance(entry, dict) else None for entry in files]
    if names != [CONTENT_FILE]:
        raise ExportError(f"{manifest_path} must list exactly {CONTENT_FILE}, it lists {names}")
    entry = files[0]
    if not isinstance(entry.get("sha256"), str) or not _HEX64.match(entry["sha256"]) or type(entry.get("rows")) is not int:
        raise ExportError(f"{manifest_path}: {CONTENT_FILE} needs a sha256 and a row count")
    path = source / CONTENT_FILE
    if not path.is_file() or sha256_file(path) != entry["sha256"]:
        raise ExportError(f"{path} is missing or fails its checksum; refusing to import")
    with open(path, "rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    if lines != entry["rows"]:
        raise ExportError(f"{path} holds {lines} lines, the manifest says {entry['rows']}; refusing to import")
    return path, lines


@dataclass
class ImportResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    warned: int = 0
    by_rule: RuleTally = field(default_factory=RuleTally)

    def counts(self) -> dict[str, int]:
        return {"inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged, "rejected": self.rejected, "warned": self.warned}


@dataclass
class _Line:
    number: int
    row: dict[str, Any] | None = None
    record: LegacyRecord | None = None
    problem: str | None = None  # why the line is not a record at all
    legacy_id: str | None = None


def _read_line(number: int, text: str) -> _Line:
    """One export line as a content row and the record validation checks, or the reason it is neither."""
    line = _Line(number)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        line.problem = f"line {number} is not JSON: {exc}"
        return line
    if not isinstance(data, dict):
        line.problem = f"line {number} is {type(data).__name__}, not a content item object"
        return line
    line.legacy_id = data.get("legacy_id") if isinstance(data.get("legacy_id"), str) else None
    for key in ("legacy_id", "source_path", "source_format"):
        if not isinstance(data.get(key), str) or not data[key]:
            line.problem = f"{key} is missing or not text"
            return line
    for key in TEXT_COLUMNS:
        if data.get(key) is not None and not isinstance(data[key], str):
            line.problem = f"{key} is {type(data[key]).__name__}, not text"
            return line
    if data.get("metadata") is not None and not isinstance(data["metadata"], dict):
        line.problem = "metadata is not an object"
        return line
    if data["source_format"] not in FORMATS.values():
        line.problem = f"source_format {data['source_format']!r} is not one of {sorted(set(FORMATS.values()))}"
        return line
    try:
        metadata = json_safe(data.get("metadata") or {})
        times = {key: _time(data.get(key), key) for key in ("migrated_at", "updated_at")}
    except ValueError as exc:
        line.problem = str(exc)
        return line
    content = data.get("content")
    claimed = data.get("record_hash")
    row = {
        **{key: data.get(key) for key in TEXT_COLUMNS},
        "legacy_id": data["legacy_id"],
        "source_root": data.get("source_root") if isinstance(data.get("source_root"), str) else "",
        "source_path": data["source_path"],
        "source_format": data["source_format"],
        "tags": data.get("tags") if data.get("tags") is not None else [],
        "metadata": metadata,
        "content_hash": sha256_text(content),  # recomputed, never taken on trust
        "content_length": len(content or ""),
        "record_hash": claimed if isinstance(claimed, str) and _HEX64.match(claimed) else sha256_text(json.dumps(data, sort_keys=True, default=str)),
        "created_at": data.get("created_at"),
        **times,
    }
    line.row = row
    created = row["created_at"] if isinstance(row["created_at"], str) or row["created_at"] is None else str(row["created_at"])
    line.record = LegacyRecord(
        row["legacy_id"],
        row["source_path"],
        row["source_format"],
        number,
        row["title"],
        content,
        row["url"],
        row["content_type"],
        created,
        row["tags"],
        row["category"],
        metadata,
        row["content_hash"],
        row["record_hash"],
    )
    return line


def _time(value: Any, key: str) -> dt.datetime | None:
    if value is None:
        return None
    moment = parse_iso(value) if isinstance(value, str) else None
    if moment is None:
        raise ValueError(f"{key} {value!r} is not an ISO date and time")
    return moment


def _batches(path: Path, size: int) -> Iterator[list[_Line]]:
    batch: list[_Line] = []
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for number, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            batch.append(_read_line(number, text))
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def import_content(
    engine: Engine,
    source: Path,
    run_id: str,
    *,
    rules: MigrationRules | None = None,
    journal: Journal | None = None,
    validate_data: bool = True,
    batch_size: int = 1000,
    on_lines: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Upsert the content of an export by legacy id, after verifying its manifest whole: each line
    checked against ``rules`` (a bad one rejected alone, with its reasons, in ``rejected_records``),
    each batch written in one transaction with its journal entries. An imported row that matches
    the target's is unchanged whatever hashes it claims; one that differs is updated."""
    path, total = verify_export(source)
    rules = rules or default_rules()
    done = 0
    result = ImportResult()
    seen: dict[str, int] = {}  # legacy id → the line that holds it
    for batch in _batches(path, batch_size):
        records = [line.record for line in batch if line.record is not None]
        found = validate_records(records, rules.validation)
        verdicts: dict[int, list[Violation]] = {}
        for position, record in enumerate(records):
            broken = [v for v in found.get(position, []) if v.rule != UNIQUE_RULE]
            if record.legacy_id in seen:
                broken.insert(0, Violation(UNIQUE_RULE, "error", f"{DUPLICATE_ID} {record.legacy_id!r}: first on line {seen[record.legacy_id]}"))
            elif not (validate_data and blocks(broken)):
                seen[record.legacy_id] = record.record_index
            if broken:
                verdicts[record.record_index] = broken
        retry_transient(partial(_write_import_batch, engine, run_id, batch, verdicts, validate_data, journal, result))
        done += len(batch)
        if on_lines:
            on_lines(done, total)
    return result


def _same(existing: dict[str, Any], row: dict[str, Any]) -> bool:
    return all(_jsonable(existing[key]) == _jsonable(row[key]) for key in COMPARED)


def _write_import_batch(
    engine: Engine,
    run_id: str,
    batch: list[_Line],
    verdicts: dict[int, list[Violation]],
    validate_data: bool,
    journal: Journal | None,
    result: ImportResult,
) -> None:
    tally = ImportResult()
    now = utcnow()
    rejections: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    loads: list[dict[str, Any]] = []
    for line in batch:
        broken = verdicts.get(line.number, [])
        if line.problem is not None:
            rejections.append(_rejection(run_id, line, "parse", line.problem, []))
        elif (validate_data and blocks(broken)) or any(v.rule == UNIQUE_RULE for v in broken):
            rejections.append(_rejection(run_id, line, "validate", "; ".join(v.message for v in broken), [v.rule for v in broken]))
            tally.by_rule.add("rejected", [v.rule for v in broken])
        else:
            if broken:
                warnings.append(
                    {"run_id": run_id, "source_path": CONTENT_FILE, "record_index": line.number, "legacy_id": line.legacy_id,
                     "reason": "; ".join(v.message for v in broken), "rules": [v.rule for v in broken]}
                )  # fmt: skip
                tally.by_rule.add("warned", [v.rule for v in broken])
            assert line.row is not None
            row = dict(line.row)
            row["created_at"] = (
                _time(row["created_at"], "created_at") if isinstance(row["created_at"], str) and parse_iso(row["created_at"]) else None
            )
            loads.append(row)
    with engine.begin() as conn:
        serialise_writes(conn, "content")
        if journal:
            journal.open_transaction(conn)
        existing = _existing_rows(conn, [row["legacy_id"] for row in loads])
        new = [row for row in loads if row["legacy_id"] not in existing]
        changed = [row for row in loads if row["legacy_id"] in existing and not _same(existing[row["legacy_id"]], row)]
        tally.unchanged = len(loads) - len(new) - len(changed)
        depend_on_runs(conn, run_id, {existing[row["legacy_id"]]["run_id"] for row in loads if row["legacy_id"] in existing})
        if new:
            for row in new:
                row.update(migrated_at=row["migrated_at"] or now, updated_at=row["updated_at"] or now, run_id=run_id)
            ids = reserve_ids(conn, CONTENT, len(new))
            columns = {"id": ids, **{key: [row[key] for row in new] for key in new[0]}}
            refused = insert_isolating_failures(conn, CONTENT, columns)
            inserted = [{**row, "id": ids[i]} for i, row in enumerate(new) if i not in refused]
            for i in refused:
                line_number = next(line.number for line in batch if line.row is not None and line.row["legacy_id"] == new[i]["legacy_id"])
                rejections.append(_rejection(run_id, _Line(line_number, legacy_id=new[i]["legacy_id"]), "load", refused[i], []))
            map_inserted_items(conn, inserted, run_id, now)
            if journal:
                journal.inserted("content_items", [row["id"] for row in inserted])
                journal.inserted("legacy_mappings", [row["legacy_id"] for row in inserted])
            tally.inserted = len(inserted)
        if changed:
            ids = [existing[row["legacy_id"]]["id"] for row in changed]
            if journal:
                journal.before_change(conn, "content_items", "update", ids)
            for item_id, row in zip(ids, changed, strict=True):
                values = {**row, "updated_at": now, "run_id": run_id}
                values.pop("migrated_at")
                conn.execute(CONTENT.update().where(CONTENT.c.id == item_id).values(values))
            tally.updated = len(changed)
        if rejections:
            bulk_insert(conn, REJECTED, rejections)
        if warnings:
            bulk_insert(conn, WARNINGS, warnings)
    result.inserted += tally.inserted
    result.updated += tally.updated
    result.unchanged += tally.unchanged
    result.rejected += len(rejections)
    result.warned += len(warnings)
    result.by_rule.merge(tally.by_rule)  # counted once the batch committed (a retried batch counts once)


def _rejection(run_id: str, line: _Line, stage: str, reason: str, rules: list[str]) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "source_path": CONTENT_FILE,
        "record_index": line.number,
        "legacy_id": line.legacy_id[:512] if line.legacy_id else None,
        "stage": stage,
        "reason": reason,
        "rules": rules,
        "raw": None,
    }


def _existing_rows(conn: Connection, legacy_ids: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(legacy_ids), 500):
        chunk = legacy_ids[start : start + 500]
        for row in conn.execute(select(CONTENT).where(CONTENT.c.legacy_id.in_(chunk))).mappings():
            found[row["legacy_id"]] = dict(row)
    return found
