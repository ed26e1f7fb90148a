"""Writing a batch of records into the target: content items, legacy mappings, the files'
tracking rows and every rejection, in one transaction per batch.

An unchanged record (same legacy id, path and record hash) is never rewritten, so running
the same migration twice leaves the database as once.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, bindparam, select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from migration_assets.backup import Journal
from migration_assets.derivation import DerivedRecords
from migration_assets.records import LegacyRecord, RecordRejection, clean_text, parse_iso
from migration_assets.sources.discovery import FileStatus, SourceFile
from migration_assets.sources.parse import ParsedFile
from migration_assets.store.bulk import bulk_insert, insert_columns, reserve_ids
from migration_assets.store.dependencies import depend_on_content, depend_on_runs
from migration_assets.store.derived import NewKnowledge, write_new_knowledge
from migration_assets.store.tables import CONTENT, ITEMS, MAPPINGS, REJECTED, WARNINGS
from migration_assets.validation import DUPLICATE_ID, UNIQUE_RULE, Violation

T = TypeVar("T")
_IN_CHUNK = 900  # ids per lookup: under every SQLite's limit of bound parameters
SKIPPED_STATUSES = {FileStatus.UNSUPPORTED, FileStatus.TOO_LARGE, FileStatus.NOT_FOLLOWED, FileStatus.MISSING}


@dataclass
class LoadCounts:
    """What a write did, per record."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    pruned: int = 0
    retries: int = 0
    chunks: int = 0  # knowledge chunks and vectors written with the content (derived in the parse)
    vectors: int = 0
    files: Counter[str] = field(default_factory=Counter)
    planned_items: list[dict[str, Any]] = field(default_factory=list)  # a dry run's per-file outcomes
    planned_rejections: list[dict[str, Any]] = field(default_factory=list)
    planned_warnings: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: LoadCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected += other.rejected
        self.retries += other.retries
        self.chunks += other.chunks
        self.vectors += other.vectors
        self.files.update(other.files)
        self.planned_items += other.planned_items
        self.planned_rejections += other.planned_rejections
        self.planned_warnings += other.planned_warnings

    def as_dict(self) -> dict[str, Any]:
        return {
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "pruned": self.pruned,
            "retries": self.retries,
            "chunks": self.chunks,
            "vectors": self.vectors,
            "files": dict(self.files),
        }


@dataclass
class FileLoad:
    """One parsed file with the verdicts of validation, ready to write."""

    source: SourceFile
    parsed: ParsedFile
    invalid: dict[int, list[Violation]] = field(default_factory=dict)  # record_index → the rules it breaks (blocking)
    warnings: dict[int, list[Violation]] = field(default_factory=dict)  # record_index → the rules it breaks (loaded anyway)


def file_status(source: SourceFile) -> str:
    return "skipped" if source.status in SKIPPED_STATUSES else "rejected"


def _item_row(run_id: str, source: SourceFile, status: str, reason: str | None, **counts: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "source_path": source.rel_path,
        "source_format": source.format,
        "status": status,
        "reason": reason,
        "size": source.size,
        "mtime": source.mtime,
        "sha256": counts.pop("sha256", None) or source.sha256,
        "encoding": counts.pop("encoding", None),
        "records_found": counts.get("found", 0),
        "records_inserted": counts.get("inserted", 0),
        "records_updated": counts.get("updated", 0),
        "records_unchanged": counts.get("unchanged", 0),
        "records_rejected": counts.get("rejected", 0),
    }


def record_ineligible_files(conn: Connection, run_id: str, sources: Iterable[SourceFile]) -> Counter[str]:
    """Tracking rows for files that are never parsed: unsupported, too large, unreadable."""
    rows = [_item_row(run_id, s, file_status(s), s.reason) for s in sources if not s.eligible]
    if rows:
        bulk_insert(conn, ITEMS, rows)
    return Counter(row["status"] for row in rows)


@dataclass(frozen=True)
class ExistingItem:
    id: int
    source_root: str
    source_path: str
    record_hash: str
    run_id: str | None = None  # the run that last wrote it


def map_inserted_items(conn: Connection, rows: Sequence[dict[str, Any]], run_id: str, now: dt.datetime) -> None:
    """Give content rows just inserted (with their ids, from ``assign_ids``) their
    ``legacy_mappings``."""
    _map_items(conn, [row["legacy_id"] for row in rows], [row["id"] for row in rows], [row["source_path"] for row in rows], run_id, now)


def _map_items(conn: Connection, legacy_ids: list[str], item_ids: list[int], source_paths: list[str], run_id: str, now: dt.datetime) -> None:
    count = len(item_ids)
    insert_columns(
        conn,
        MAPPINGS,
        {"legacy_id": legacy_ids, "content_item_id": item_ids, "source_path": source_paths, "run_id": [run_id] * count, "created_at": [now] * count},
    )


def prune_removed_files(conn: Connection, run_id: str, source_root: str, paths: Sequence[str], journal: Journal | None = None) -> int:
    """Delete the records of files that left ``source_root`` (only that source's) and track each
    such file as ``removed``; returns the number of content items deleted."""
    pruned = 0
    rows = []
    for path in paths:
        doomed = CONTENT.c.source_root == source_root, CONTENT.c.source_path == path
        depend_on_content(conn, run_id, *doomed)
        if journal:
            journal.deleting_content(conn, list(conn.execute(select(CONTENT.c.id).where(*doomed)).scalars()))
        result = conn.execute(CONTENT.delete().where(*doomed))
        gone = result.rowcount or 0
        pruned += gone
        source = SourceFile(path, "", 0, 0.0, None, FileStatus.MISSING, None)
        rows.append(_item_row(run_id, source, "removed", f"no longer in the source directory; {gone} records pruned"))
    bulk_insert(conn, ITEMS, rows)
    return pruned


def existing_items(conn: Connection, legacy_ids: Sequence[str]) -> dict[str, ExistingItem]:
    """The content items already in the target for these legacy ids."""
    # plain SQL: SQLAlchemy's expanding IN costs more per id than the lookup itself
    found: dict[str, ExistingItem] = {}
    columns = "legacy_id, id, source_root, source_path, record_hash, run_id"
    postgres = conn.dialect.name == "postgresql"
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for start in range(0, len(legacy_ids), _IN_CHUNK):
        chunk = list(legacy_ids[start : start + _IN_CHUNK])
        if postgres:
            rows = conn.exec_driver_sql(f"select {columns} from {CONTENT.name} where legacy_id = any({mark})", (chunk,))
        else:
            rows = conn.exec_driver_sql(f"select {columns} from {CONTENT.name} where legacy_id in ({', '.join([mark] * len(chunk))})", tuple(chunk))
        for legacy_id, *rest in rows:
            found[legacy_id] = ExistingItem(*rest)
    return found


def _created_at(record: LegacyRecord, source: SourceFile, now: dt.datetime, preserve_timestamps: bool) -> dt.datetime | None:
    """The legacy creation time (else the file's mtime) when timestamps are preserved; else now.
    A legacy date that does not parse leaves it empty (the record was warned, or rejected, by the
    ``created_at.unparseable`` rule; its raw value is in metadata)."""
    if not preserve_timestamps:
        return now
    if record.created_at:
        return parse_iso(record.created_at)
    return dt.datetime.fromtimestamp(source.mtime, tz=dt.UTC) if source.mtime else now


def _content_columns(
    new: Sequence[tuple[SourceFile, LegacyRecord]], ids: list[int], source_root: str, run_id: str, now: dt.datetime, preserve_timestamps: bool
) -> dict[str, list[Any]]:
    """Content items to insert, column by column: the one place that says what a record writes."""
    records = [record for _, record in new]
    count = len(records)
    return {
        "id": ids,
        "legacy_id": [r.legacy_id for r in records],
        "source_root": [source_root] * count,
        "source_path": [r.source_path for r in records],
        "source_format": [r.source_format for r in records],
        "title": [r.title for r in records],
        "content": [r.content for r in records],
        "url": [r.url for r in records],
        "content_type": [r.type for r in records],
        "category": [r.category for r in records],
        "tags": [r.tags for r in records],
        "metadata": [r.metadata for r in records],
        "content_hash": [r.content_hash for r in records],
        "content_length": [len(r.content or "") for r in records],
        "record_hash": [r.record_hash for r in records],
        "created_at": [_created_at(record, source, now, preserve_timestamps) for source, record in new],
        "updated_at": [now] * count,
        "migrated_at": [now] * count,
        "run_id": [run_id] * count,
    }


def _content_row(
    record: LegacyRecord, source: SourceFile, source_root: str, run_id: str, now: dt.datetime, preserve_timestamps: bool
) -> dict[str, Any]:
    """What an update in place sets: a new item's values but its id and first migration time."""
    columns = _content_columns([(source, record)], [0], source_root, run_id, now, preserve_timestamps)
    return {key: values[0] for key, values in columns.items() if key not in ("id", "migrated_at")}


def _rejection_row(run_id: str, rejection: RecordRejection, stage: str, rules: list[str] | None = None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "source_path": rejection.source_path,
        "record_index": rejection.record_index,
        "legacy_id": clean_text(rejection.legacy_id)[:512] if rejection.legacy_id else None,
        "stage": stage,
        "reason": clean_text(rejection.reason),
        "rules": rules,
        "raw": clean_text(rejection.raw) if rejection.raw else None,
    }


def database_refusal(exc: DBAPIError) -> str:
    """The first line of what the database said, without SQLAlchemy's statement dump."""
    message = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    return f"refused by the database: {message}"


def write_isolating_failures(conn: Connection, write: Callable[[Connection, Sequence[T]], object], rows: Sequence[T]) -> dict[int, str]:
    """Write ``rows`` in one go; if the database refuses the batch, write them one by one so
    that only the rows it refuses fail. Returns ``{row position: reason}`` for those.

    Only data errors are isolated; connection and lock failures propagate.
    """
    if not rows:
        return {}
    try:
        with conn.begin_nested():
            write(conn, rows)
        return {}
    except (DataError, IntegrityError):
        pass
    refused: dict[int, str] = {}
    for position, row in enumerate(rows):
        try:
            with conn.begin_nested():
                write(conn, [row])
        except (DataError, IntegrityError) as exc:
            refused[position] = database_refusal(exc)
    return refused


def insert_isolating_failures(conn: Connection, table: Table, columns: dict[str, list[Any]]) -> dict[int, str]:
    """``write_isolating_failures`` for rows given column by column (``insert_columns``)."""
    count = len(next(iter(columns.values()), []))

    def insert(c: Connection, positions: Sequence[int]) -> None:
        insert_columns(c, table, columns if len(positions) == count else {key: [values[i] for i in positions] for key, values in columns.items()})

    return write_isolating_failures(conn, insert, range(count))


def _write_derived(
    conn: Connection, run_id: str, written: list[tuple[int, LegacyRecord]], updated_ids: list[int], derived: DerivedRecords, journal: Journal | None
) -> tuple[int, int]:
    """The chunks and vectors of the records written, as their parse derived them."""
    items = []
    replaced = []
    updated = set(updated_ids)
    for item_id, record in written:
        found = derived.of(record)
        if found is None:
            continue  # not knowledge (too short), or left to the knowledge stage
        items.append(NewKnowledge(item_id, record.record_hash, record.title, record.content or "", *found))
        if item_id in updated:
            replaced.append(item_id)
    return write_new_knowledge(conn, run_id, items, model=derived.model, replaced=replaced, journal=journal)


def write_batch(
    conn: Connection,
    run_id: str,
    files: Sequence[FileLoad],
    *,
    source_root: str,
    preserve_timestamps: bool,
    dry_run: bool = False,
    journal: Journal | None = None,
    derived: DerivedRecords | None = None,
) -> LoadCounts:
    """Write one batch of parsed, validated files; the caller owns the transaction.

    The chunks and vectors ``derived`` for the records inserted or updated are written with
    them. With ``dry_run`` nothing is written and the counts say what would have happened.
    """
    now = dt.datetime.now(dt.UTC)
    counts = LoadCounts()
    valid: list[tuple[FileLoad, LegacyRecord]] = []
    blocked: list[LegacyRecord] = []
    for load in files:
        for record in load.parsed.records:
            if record.record_index in load.invalid:
                blocked.append(record)
            else:
                valid.append((load, record))
    existing = existing_items(conn, [record.legacy_id for _, record in valid] + [record.legacy_id for record in blocked])

    new: list[tuple[SourceFile, LegacyRecord]] = []
    changed_rows: list[dict[str, Any]] = []
    changed_records: list[LegacyRecord] = []
    rejections: list[dict[str, Any]] = []
    per_file: dict[str, Counter[str]] = {load.source.rel_path: Counter() for load in files}
    reasons: dict[str, list[str]] = {load.source.rel_path: [] for load in files}
    built_on: set[str | None] = set()  # the runs whose records this batch keeps as its own or updates

    def reject(rejection: RecordRejection, stage: str, rules: list[str] | None = None) -> None:
        rejections.append(_rejection_row(run_id, rejection, stage, rules))
        per_file[rejection.source_path]["rejected"] += 1
        reasons[rejection.source_path].append(rejection.reason)

    for load in files:
        for rejection in load.parsed.rejections:
            reject(rejection, "parse")
        for record in load.parsed.records:
            if record.record_index in load.invalid:
                raw = f"title={record.title!r:.200} content={record.content!r:.200}"
                broken = load.invalid[record.record_index]
                why = "; ".join(v.message for v in broken)
                known = existing.get(record.legacy_id)
                if known is not None and known.run_id != run_id and (known.source_root, known.source_path) == (source_root, record.source_path):
                    why += "; the version migrated earlier stays in the target"  # a tightened rule reports, never deletes
                reject(RecordRejection(record.source_path, record.record_index, why, record.legacy_id, raw), "validate", [v.rule for v in broken])

    warned_ids = {(r.source_path, r.record_index): r.legacy_id for load in files for r in load.parsed.records if r.record_index in load.warnings}
    warnings = [
        {
            "run_id": run_id,
            "source_path": load.source.rel_path,
            "record_index": index,
            "legacy_id": clean_text(warned_ids[(load.source.rel_path, index)])[:512] if (load.source.rel_path, index) in warned_ids else None,
            "reason": "; ".join(v.message for v in found),
            "rules": [v.rule for v in found],
        }
        for load in files
        for index, found in load.warnings.items()
    ]
    for load, record in valid:
        tally = per_file[record.source_path]
        known = existing.get(record.legacy_id)
        if known is None:
            new.append((load.source, record))
            existing[record.legacy_id] = ExistingItem(-1, source_root, record.source_path, record.record_hash, run_id)
            tally["inserted"] += 1
        elif (known.source_root, known.source_path) != (source_root, record.source_path):
            where = known.source_path if known.source_root == source_root else f"{known.source_root}/{known.source_path}"
            if known.run_id == run_id:  # an earlier batch of this run wrote it: the first occurrence wins
                conflict, stage = f"{DUPLICATE_ID} {record.legacy_id!r}: first seen in {where}", "validate"
            else:
                conflict, stage = f"legacy_id {record.legacy_id!r} is already migrated from {where!r}", "load"
            reject(RecordRejection(record.source_path, record.record_index, conflict, record.legacy_id), stage, [UNIQUE_RULE])
        elif known.record_hash == record.record_hash:
            tally["unchanged"] += 1
            built_on.add(known.run_id)
        else:
            built_on.add(known.run_id)
            row = _content_row(record, load.source, source_root, run_id, now, preserve_timestamps)
            row["_id"] = known.id
            changed_rows.append(row)
            changed_records.append(record)
            tally["updated"] += 1

    written: list[tuple[int, LegacyRecord]] = []  # (content item id, record) of every row written
    updated: list[tuple[int, LegacyRecord]] = []  # of them, those updated in place
    if not dry_run:
        depend_on_runs(conn, run_id, built_on)
        if new:
            ids = reserve_ids(conn, CONTENT, len(new))
            refused = insert_isolating_failures(conn, CONTENT, _content_columns(new, ids, source_root, run_id, now, preserve_timestamps))
            if refused:  # a writer of other files beside this one may have committed the same legacy id meanwhile
                taken = existing_items(conn, [new[position][1].legacy_id for position in refused])
                for position in refused:
                    other = taken.get(new[position][1].legacy_id)
                    if other is not None:
                        where = other.source_path if other.source_root == source_root else f"{other.source_root}/{other.source_path}"
                        refused[position] = f"legacy_id {new[position][1].legacy_id!r} is already migrated from {where!r}"
            for position in refused:
                _, record = new[position]
                per_file[record.source_path]["inserted"] -= 1
                reject(RecordRejection(record.source_path, record.record_index, refused[position], record.legacy_id), "load")
            inserted = [(ids[position], record) for position, (_, record) in enumerate(new) if position not in refused]
            written += inserted
            item_ids = [item_id for item_id, _ in inserted]
            legacy_ids = [record.legacy_id for _, record in inserted]
            _map_items(conn, legacy_ids, item_ids, [record.source_path for _, record in inserted], run_id, now)
            if journal:
                journal.inserted("content_items", item_ids)
                journal.inserted("legacy_mappings", legacy_ids)
        if changed_rows:
            if journal:
                journal.before_change(conn, "content_items", "update", [row["_id"] for row in changed_rows])
            # bind names may not equal column names in an UPDATE's SET clause
            columns = [c for c in changed_rows[0] if c not in ("_id", "legacy_id")]
            statement = update(CONTENT).where(CONTENT.c.id == bindparam("_id")).values({c: bindparam(f"v_{c}") for c in columns})
            params = [{"_id": row["_id"], **{f"v_{c}": row[c] for c in columns}} for row in changed_rows]
            refused = write_isolating_failures(conn, lambda c, rows: c.execute(statement, list(rows)), params)
            for position in refused:
                record = changed_records[position]
                per_file[record.source_path]["updated"] -= 1
                reject(RecordRejection(record.source_path, record.record_index, refused[position], record.legacy_id), "load")
            updated = [
                (row["_id"], record)
                for position, (row, record) in enumerate(zip(changed_rows, changed_records, strict=True))
                if position not in refused
            ]
            written += updated
        if derived is not None:
            counts.chunks, counts.vectors = _write_derived(conn, run_id, written, [item_id for item_id, _ in updated], derived, journal)
        if rejections:
            bulk_insert(conn, REJECTED, rejections)
        if warnings:
            bulk_insert(conn, WARNINGS, warnings)

    item_rows = []
    for load in files:
        tally = per_file[load.source.rel_path]
        loaded = tally["inserted"] + tally["updated"] + tally["unchanged"]
        found = len(load.parsed.records) + len(load.parsed.rejections)
        reason: str | None = None
        if load.parsed.error:
            status, reason = "rejected", load.parsed.error
        elif loaded:
            status = "migrated"
            reason = f"{tally['rejected']} of {found} records rejected: {reasons[load.source.rel_path][0]}" if tally["rejected"] else None
        else:
            status = "rejected"
            first = reasons[load.source.rel_path][0] if reasons[load.source.rel_path] else "no records"
            reason = f"all {found} records rejected: {first}" if found > 1 else first
        counts.files[status] += 1
        item_rows.append(
            _item_row(run_id, load.source, status, reason, found=found, encoding=load.parsed.encoding, sha256=load.parsed.sha256, **tally)
        )
        counts.inserted += tally["inserted"]
        counts.updated += tally["updated"]
        counts.unchanged += tally["unchanged"]
        counts.rejected += tally["rejected"]
    if dry_run:
        counts.planned_items, counts.planned_rejections, counts.planned_warnings = item_rows, rejections, warnings
    elif item_rows:
        bulk_insert(conn, ITEMS, item_rows)
    return counts
