"""Export of the current content to JSON Lines with checksums, and import back from such an export.

Knowledge items and embeddings are derived from content, so an import rebuilds them rather
than trusting copies. Plain Python, no Dagster.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from migration_assets.backup import sha256_file
from migration_assets.store.bulk import assign_ids, bulk_insert
from migration_assets.store.database import redact_url, serialise_writes
from migration_assets.store.loader import existing_items, map_inserted_items
from migration_assets.store.models import utcnow
from migration_assets.store.tables import CONTENT

CONTENT_FILE = "content_items.jsonl"
MANIFEST_FILE = "manifest.json"
EXPORTED = [c.key for c in CONTENT.columns if c.key not in ("id", "run_id")]


class ExportError(RuntimeError):
    """An export that cannot be trusted (checksum mismatch, missing file)."""


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
        "database_url": redact_url(database_url),
        "files": [{"name": CONTENT_FILE, "sha256": sha256_file(path), "rows": rows}],
    }
    (output / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return manifest


@dataclass
class ImportCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


def _row_from_export(data: dict[str, Any], run_id: str, now: dt.datetime) -> dict[str, Any]:
    row = {key: data.get(key) for key in EXPORTED}
    for key in ("created_at", "migrated_at", "updated_at"):
        value = row[key]
        if isinstance(value, str):
            row[key] = dt.datetime.fromisoformat(value)
    row["migrated_at"] = row["migrated_at"] or now
    row["updated_at"] = row["updated_at"] or now
    row["run_id"] = run_id
    return row


def import_content(engine: Engine, source: Path, run_id: str, batch_size: int = 1000) -> ImportCounts:
    """Upsert the content of an export (by legacy id), after verifying its checksums."""
    try:
        manifest = json.loads((source / MANIFEST_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"{source / MANIFEST_FILE} is not a readable export manifest: {exc}") from None
    for entry in manifest["files"]:
        path = source / entry["name"]
        if not path.exists() or sha256_file(path) != entry["sha256"]:
            raise ExportError(f"{path} is missing or fails its checksum; refusing to import")
    counts = ImportCounts()
    now = utcnow()
    with open(source / CONTENT_FILE, encoding="utf-8") as fh:
        batch: list[dict[str, Any]] = []
        for line in fh:
            batch.append(_row_from_export(json.loads(line), run_id, now))
            if len(batch) >= batch_size:
                _import_batch(engine, batch, run_id, counts)
                batch = []
        if batch:
            _import_batch(engine, batch, run_id, counts)
    return counts


def _import_batch(engine: Engine, rows: list[dict[str, Any]], run_id: str, counts: ImportCounts) -> None:
    with engine.begin() as conn:
        serialise_writes(conn, "content")
        known = existing_items(conn, [r["legacy_id"] for r in rows])
        new = [r for r in rows if r["legacy_id"] not in known]
        for row in rows:
            item = known.get(row["legacy_id"])
            if item is None:
                continue
            if item.record_hash == row["record_hash"]:
                counts.unchanged += 1
            else:
                conn.execute(CONTENT.update().where(CONTENT.c.id == item.id).values(row))
                counts.updated += 1
        if new:
            assign_ids(conn, CONTENT, new)
            bulk_insert(conn, CONTENT, new)
            map_inserted_items(conn, new, run_id, utcnow())
            counts.inserted += len(new)
