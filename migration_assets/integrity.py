"""Integrity checks on what landed: plain functions over the target database.

Each check returns an ``IntegrityResult``; the Dagster layer turns them into asset check
results, and ``record_results`` keeps them in ``data_integrity_checks`` for SQL and reports.
A run's checks look at the run's scope: the files it tracked in ``migration_items``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import REAL, Connection, Engine, LargeBinary, and_, func, inspect, literal, select, type_coerce
from sqlalchemy.dialects import postgresql

from migration_assets.repeats import repeated_hashes
from migration_assets.store.bulk import bulk_insert
from migration_assets.store.models import (
    utcnow,
)
from migration_assets.store.runs import latest_items
from migration_assets.store.tables import CHECKS, CONTENT, EMBEDDINGS, ITEMS, KNOWLEDGE, MAPPINGS, REJECTED, RUNS

EXAMPLES = 20


@dataclass
class IntegrityResult:
    name: str
    passed: bool
    severity: str  # "ERROR" or "WARN"
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def _run_files(run_id: str):  # type: ignore[no-untyped-def]
    """(source root, relative path) of every file the run tracked."""
    return (
        select(RUNS.c.source_directory.label("root"), ITEMS.c.source_path.label("path"))
        .select_from(ITEMS.join(RUNS, RUNS.c.id == ITEMS.c.run_id))
        .where(ITEMS.c.run_id == run_id)
        .subquery()
    )


def check_reconciliation(engine: Engine, run_id: str, *, files_discovered: int, records_parsed: int) -> IntegrityResult:
    """Files discovered = migrated + skipped + rejected; records parsed = loaded + rejected; and
    every record counted as loaded is in ``content_items``."""
    with engine.connect() as conn:
        by_status: dict[str, int] = dict(
            conn.execute(select(ITEMS.c.status, func.count()).where(ITEMS.c.run_id == run_id).group_by(ITEMS.c.status)).all()
        )
        sums = conn.execute(
            select(
                func.coalesce(func.sum(ITEMS.c.records_found), 0),
                func.coalesce(func.sum(ITEMS.c.records_inserted + ITEMS.c.records_updated + ITEMS.c.records_unchanged), 0),
                func.coalesce(func.sum(ITEMS.c.records_rejected), 0),
            ).where(ITEMS.c.run_id == run_id)
        ).one()
        rejected_rows = conn.execute(select(func.count()).select_from(REJECTED).where(REJECTED.c.run_id == run_id)).scalar_one()
        run = conn.execute(select(RUNS.c.source_directory, RUNS.c.dry_run).where(RUNS.c.id == run_id)).one()
        present = (
            select(CONTENT.c.source_path, func.count().label("n"))
            .where(CONTENT.c.source_root == run.source_directory)
            .group_by(CONTENT.c.source_path)
            .subquery()
        )
        loaded = ITEMS.c.records_inserted + ITEMS.c.records_updated + ITEMS.c.records_unchanged
        missing = conn.execute(
            select(ITEMS.c.source_path, loaded, func.coalesce(present.c.n, 0))
            .select_from(ITEMS.outerjoin(present, present.c.source_path == ITEMS.c.source_path))
            .where(ITEMS.c.run_id == run_id, loaded > func.coalesce(present.c.n, 0))
            .limit(EXAMPLES)
        ).all()
    found, loaded_total, rejected = (int(v) for v in sums)
    files_tracked = sum(n for status, n in by_status.items() if status != "removed")  # removed files are not in the source
    problems = []
    if files_tracked != files_discovered:
        problems.append(f"{files_discovered} files discovered but {files_tracked} accounted for")
    if found != records_parsed:
        problems.append(f"{records_parsed} records parsed but {found} tracked")
    if found != loaded_total + rejected:
        problems.append(f"{found} records found != {loaded_total} loaded + {rejected} rejected")
    if rejected_rows != rejected:
        problems.append(f"{rejected} records counted as rejected but {rejected_rows} kept in rejected_records")
    if missing and not run.dry_run:
        problems.append(f"{len(missing)} files have fewer rows in content_items than they loaded")
    details = {
        "files_discovered": files_discovered,
        "files": {status: by_status.get(status, 0) for status in ("migrated", "skipped", "rejected", "removed")},
        "records_parsed": records_parsed,
        "records_loaded": loaded_total,
        "records_rejected": rejected,
        "files_missing_rows": [{"path": p, "loaded": n, "present": m} for p, n, m in missing],
    }
    message = "; ".join(problems) or f"{files_discovered} files and {records_parsed} records all accounted for"
    return IntegrityResult("reconciliation", not problems, "ERROR", message, details)


def check_duplicate_content(engine: Engine, run_id: str, *, page: int = 20_000) -> IntegrityResult:
    """The same non-empty content under different legacy ids, for content the run touched.

    ``content_hash`` is not indexed (migration 0005), and grouping it in SQL sorts the whole
    table in memory. Instead a first pass counts an 8-byte hash of every content hash in
    numpy, and a second pass keeps only the rows whose hash occurs more than once: memory
    stays flat however large the table."""
    non_empty = CONTENT.c.content_length > 0
    with engine.connect() as conn:
        streamed = conn.execution_options(stream_results=True, yield_per=page)
        hashes = streamed.execute(select(CONTENT.c.content_hash).where(non_empty)).scalars()
        repeated = repeated_hashes(hashes)
        members: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        if repeated:
            rows = streamed.execute(
                select(CONTENT.c.content_hash, CONTENT.c.legacy_id, CONTENT.c.source_root, CONTENT.c.source_path).where(non_empty)
            )
            for content_hash, legacy_id, root, path in rows:
                if hash(content_hash) in repeated:
                    members[content_hash].append((legacy_id, root, path))
        shared = {h: m for h, m in members.items() if len(m) > 1}
        # the groups with a member in a file this run tracked
        paths = {(root, path) for m in shared.values() for _, root, path in m}
        files = _run_files(run_id)
        touched: set[tuple[str, str]] = set()
        names = sorted({path for _, path in paths})
        for start in range(0, len(names), 500):
            tracked = conn.execute(select(files.c.root, files.c.path).where(files.c.path.in_(names[start : start + 500])))
            touched.update((root, path) for root, path in tracked if (root, path) in paths)
        groups = sorted(((h, m) for h, m in shared.items() if any((root, path) in touched for _, root, path in m)), key=lambda g: (-len(g[1]), g[0]))
    examples = [{"content_hash": h, "legacy_ids": sorted(legacy_id for legacy_id, _, _ in m)} for h, m in groups[:EXAMPLES]]
    message = f"{len(groups)} groups of legacy ids share identical content" if groups else "no duplicate content"
    return IntegrityResult("duplicate_content", not groups, "WARN", message, {"groups": len(groups), "examples": examples})


def check_relationships(engine: Engine) -> IntegrityResult:
    """Every knowledge item has its content item, every embedding its chunk, every content
    item its legacy mapping (and the mapping points back at it)."""
    with engine.connect() as conn:
        orphan_chunks = (
            conn.execute(
                select(KNOWLEDGE.c.id)
                .select_from(KNOWLEDGE.outerjoin(CONTENT, CONTENT.c.id == KNOWLEDGE.c.content_item_id))
                .where(CONTENT.c.id.is_(None))
                .limit(EXAMPLES)
            )
            .scalars()
            .all()
        )
        orphan_vectors = (
            conn.execute(
                select(EMBEDDINGS.c.id)
                .select_from(EMBEDDINGS.outerjoin(KNOWLEDGE, KNOWLEDGE.c.id == EMBEDDINGS.c.knowledge_item_id))
                .where(KNOWLEDGE.c.id.is_(None))
                .limit(EXAMPLES)
            )
            .scalars()
            .all()
        )
        unmapped = (
            conn.execute(
                select(CONTENT.c.legacy_id)
                .select_from(CONTENT.outerjoin(MAPPINGS, MAPPINGS.c.legacy_id == CONTENT.c.legacy_id))
                .where((MAPPINGS.c.legacy_id.is_(None)) | (MAPPINGS.c.content_item_id != CONTENT.c.id))
                .limit(EXAMPLES)
            )
            .scalars()
            .all()
        )
    problems = []
    if orphan_chunks:
        problems.append(f"knowledge items without their content item: {orphan_chunks}")
    if orphan_vectors:
        problems.append(f"embeddings without their knowledge item: {orphan_vectors}")
    if unmapped:
        problems.append(f"content items without a legacy mapping to them: {unmapped}")
    details = {"orphan_knowledge_items": orphan_chunks, "orphan_embeddings": orphan_vectors, "unmapped_legacy_ids": unmapped}
    return IntegrityResult("relationships", not problems, "ERROR", "; ".join(problems) or "all relationships hold", details)


def _check_sqlite_vectors(conn: Connection, scope: Any, dimension: int, batch_size: int) -> tuple[int, list[dict[str, Any]]]:
    """(vectors checked, bad ones) in ``scope``: the vectors as stored (float32 bytes), decoded a
    page at a time. One query, streamed through the driver's own cursor: paging it would evaluate
    the scope join once per page, and SQLAlchemy's rows would cost more than the check itself."""
    statement = select(EMBEDDINGS.c.id, EMBEDDINGS.c.dimension, type_coerce(EMBEDDINGS.c.vector, LargeBinary)).select_from(scope).compile(conn)
    size = 4 * dimension
    checked = 0
    bad: list[dict[str, Any]] = []
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(statement), [statement.params[key] for key in statement.positiontup or []])
        while page := cursor.fetchmany(batch_size):
            checked += len(page)
            sized = []
            for row in page:
                if row[1] == dimension and type(row[2]) is bytes and len(row[2]) == size:
                    sized.append(row)
                else:
                    bad.append({"embedding_id": row[0], "problem": f"dimension {len(row[2] or b'') // 4}, expected {dimension}"})
            if sized:
                matrix = np.frombuffer(b"".join(row[2] for row in sized), dtype="<f4").reshape(len(sized), dimension)
                finite = np.isfinite(matrix).all(axis=1)
                bad.extend({"embedding_id": sized[i][0], "problem": "not finite (NaN or infinity)"} for i in np.flatnonzero(~finite))
    finally:
        cursor.close()
    return checked, bad


def check_embeddings(engine: Engine, run_id: str, *, dimension: int, batch_size: int = 2000) -> IntegrityResult:
    """Every knowledge chunk has a vector; the run's vectors have the right dimension and are finite."""
    with engine.connect() as conn:
        missing = (
            conn.execute(
                select(KNOWLEDGE.c.id)
                .select_from(KNOWLEDGE.outerjoin(EMBEDDINGS, EMBEDDINGS.c.knowledge_item_id == KNOWLEDGE.c.id))
                .where(EMBEDDINGS.c.id.is_(None))
                .limit(EXAMPLES)
            )
            .scalars()
            .all()
        )
        bad: list[dict[str, Any]] = []
        checked = 0
        files = _run_files(run_id)
        scope = (
            EMBEDDINGS.join(KNOWLEDGE, KNOWLEDGE.c.id == EMBEDDINGS.c.knowledge_item_id)
            .join(CONTENT, CONTENT.c.id == KNOWLEDGE.c.content_item_id)
            .join(files, and_(CONTENT.c.source_root == files.c.root, CONTENT.c.source_path == files.c.path))
        )
        if conn.dialect.name == "postgresql":
            # the server measures its real[] arrays: no vector travels (as Python floats, slowly) to be checked
            length = func.coalesce(func.array_length(EMBEDDINGS.c.vector, 1), 0)
            infinite = EMBEDDINGS.c.vector.op("&&", is_comparison=True)(literal(["NaN", "Infinity", "-Infinity"], postgresql.ARRAY(REAL())))
            rows = conn.execute(select(EMBEDDINGS.c.id, EMBEDDINGS.c.dimension, length, infinite).select_from(scope)).all()
            checked = len(rows)
            for embedding_id, stored, size, not_finite in rows:
                if stored != dimension or size != dimension:
                    bad.append({"embedding_id": embedding_id, "problem": f"dimension {size}, expected {dimension}"})
                elif not_finite:
                    bad.append({"embedding_id": embedding_id, "problem": "not finite (NaN or infinity)"})
        else:
            checked, bad = _check_sqlite_vectors(conn, scope, dimension, batch_size)
    problems = []
    if missing:
        problems.append(f"knowledge items without an embedding: {missing}")
    if bad:
        problems.append(f"{len(bad)} bad vectors, e.g. {bad[:3]}")
    details = {"vectors_checked": checked, "chunks_without_vector": missing, "bad_vectors": bad[:EXAMPLES]}
    message = "; ".join(problems) or f"{checked} vectors of dimension {dimension}, all finite; every chunk embedded"
    return IntegrityResult("embeddings", not problems, "ERROR", message, details)


def drifted_files(engine: Engine, source_root: str) -> list[dict[str, Any]]:
    """Files whose latest migration loaded more records than ``content_items`` now holds for
    them (rows deleted by hand, say): they must be migrated again, never counted unchanged."""
    if not inspect(engine).has_table(ITEMS.name):
        return []
    latest = latest_items(source_root)
    present = (
        select(CONTENT.c.source_path, func.count().label("n")).where(CONTENT.c.source_root == source_root).group_by(CONTENT.c.source_path).subquery()
    )
    loaded = ITEMS.c.records_inserted + ITEMS.c.records_updated + ITEMS.c.records_unchanged
    with engine.connect() as conn:
        rows = conn.execute(
            select(ITEMS.c.source_path, loaded, func.coalesce(present.c.n, 0))
            .select_from(ITEMS.join(latest, latest.c.id == ITEMS.c.id).outerjoin(present, present.c.source_path == ITEMS.c.source_path))
            .where(ITEMS.c.status == "migrated", loaded > func.coalesce(present.c.n, 0))
            .order_by(ITEMS.c.source_path)
        ).all()
    return [{"path": path, "loaded": n, "present": m} for path, n, m in rows]


def check_drift(engine: Engine, source_root: str) -> IntegrityResult:
    """Tracking tables against the target: files migrated earlier whose rows are gone."""
    drifted = drifted_files(engine, source_root)
    message = f"{len(drifted)} migrated files have lost rows in content_items; the next run migrates them again" if drifted else "no drift"
    return IntegrityResult("tracking_drift", not drifted, "WARN", message, {"files": drifted[:EXAMPLES], "count": len(drifted)})


def record_results(engine: Engine, run_id: str, results: list[IntegrityResult]) -> None:
    """Keep each result in ``data_integrity_checks`` (replacing an earlier result of the same check in this run)."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(CHECKS.delete().where(CHECKS.c.run_id == run_id, CHECKS.c.check_name.in_([r.name for r in results])))
        bulk_insert(
            conn,
            CHECKS,
            [
                {
                    "run_id": run_id,
                    "check_name": r.name,
                    "passed": r.passed,
                    "severity": r.severity,
                    "details": {"message": r.message, **r.details},
                    "checked_at": now,
                }
                for r in results
            ],
        )


def results_of_run(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(CHECKS).where(CHECKS.c.run_id == run_id).order_by(CHECKS.c.id)).mappings().all()
    return [
        {"check": r["check_name"], "passed": r["passed"], "severity": r["severity"], "message": r["details"].get("message"), "details": r["details"]}
        for r in rows
    ]
